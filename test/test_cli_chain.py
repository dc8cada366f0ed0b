"""First contact: `synth` → `eval` → `replay` → `bench`, each fed only the paths printed before."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from mlesam_ros.cli import main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(argv)
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def _printed_command(out: str, label: str) -> list[str]:
    """The `mlesam ...` command a previous command printed after ``label:``."""
    match = re.search(rf"^{label}:\s+mlesam (.+)$", out, flags=re.MULTILINE)
    assert match, f"no '{label}: mlesam ...' line in:\n{out}"
    return shlex.split(match.group(1))


@pytest.mark.slow  # four commands end to end: ~30 s on 2 shared cores
def test_synth_eval_replay_bench_chain_in_a_fresh_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    synth = _run(["synth", "--out", "d", "--frames", "2", "--width", "160", "--height", "120",
                  "--lidar-beams", "16"], capsys)  # fmt: skip

    evaluate = _printed_command(synth, "evaluate")
    assert evaluate == ["eval", "--data", "d", "--split", "train"]
    scores = _run([*evaluate, "--all-only", "--no-progress", "--out", "scores"], capsys)
    assert re.search(r"\b2 frames\b.*; all-modality", scores), scores
    metrics = json.loads((tmp_path / "scores" / "metrics.json").read_text())
    assert metrics["source"]["data"] == str(Path("d") / "deliver")
    assert metrics["source"]["split"] == "train"

    replay = _printed_command(synth, "replay")
    replayed = _run([*replay, "--quiet"], capsys)
    match = re.search(r"^replayed (\S+) -> (\S+) ", replayed, flags=re.MULTILINE)
    assert match and Path(match.group(2)).is_dir()
    assert "frames: 2 labelled of 2 RGB messages" in replayed

    bench = _run(["bench", "--iters", "2", "--warmup", "1", "--camera", "160x120",
                  "--json", "bench.json"], capsys)  # fmt: skip
    assert "{" not in bench and "model full frame" in bench  # a table; the JSON in the file
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["setup"]["model"].startswith("shipped ")
    assert report["setup"]["model"].endswith("mlesam_demo_tiny.onnx")
    assert [row["name"] for row in report["results"]] == ["model", "model full frame"]
    assert report["results"][0]["p50_ms"] > 0 and report["results"][0]["startup_s"] > 0


def test_eval_without_split_takes_the_only_split_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlesam_ros.train.commands import resolve_eval_data

    monkeypatch.chdir(tmp_path)
    (tmp_path / "d" / "deliver" / "img" / "sun" / "train").mkdir(parents=True)
    assert resolve_eval_data("d", None, None) == (str(Path("d") / "deliver"), "train")
    said = capsys.readouterr().out
    assert "using d/deliver" in said and "using split 'train', the only one" in said
    with pytest.raises(ValueError, match=r"has no 'val' split; it has train \(pass --split train"):
        resolve_eval_data("d", None, "val")
    (tmp_path / "d" / "deliver" / "img" / "sun" / "val").mkdir()
    assert resolve_eval_data("d/deliver", "deliver", None) == ("d/deliver", "val")
    assert resolve_eval_data("synthetic", None, None) == ("synthetic", "val")
