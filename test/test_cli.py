"""The ``mlesam`` command line: each concern registers its commands, each option has help."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mlesam_ros.cli import COMMAND_MODULES, build_parser, main


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_concern_registers_its_own_commands() -> None:
    commands = _subcommands()
    expected = {"synth", "model-info", "train", "eval", "export", "build-engine", "bench",
                "replay", "demo", "node", "play"}  # fmt: skip
    assert expected <= set(commands)
    assert "mlesam_ros.pipeline.commands" not in COMMAND_MODULES  # the frame path has none


def test_every_option_has_help_text() -> None:
    missing = [
        f"{name} {action.option_strings[0]}"
        for name, parser in _subcommands().items()
        for action in parser._actions
        if action.option_strings and action.help is None
    ]
    assert not missing, missing


def test_help_shows_the_defaults(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "timed frames (default: 50)" in text
    assert "untimed frames before timing (default: 5)" in text


def test_a_bad_option_prints_the_subcommands_usage(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--no-such-option"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: mlesam bench ") and "--iters" in err
    assert "unrecognized arguments: --no-such-option" in err


@pytest.mark.parametrize("text", ["640x480", "640x480,1920x1080"])
def test_one_camera_size_flag_takes_one_or_more_sizes(text) -> None:
    bench = _subcommands()["bench"]
    args = bench.parse_args(["--camera", text])
    assert args.camera[0] == (480, 640) and len(args.camera) == text.count(",") + 1
    with pytest.raises(SystemExit):
        bench.parse_args(["--camera", "640by480"])


@pytest.mark.parametrize(
    "arguments",
    [
        ["synth", "--out", "{file}/drive", "--frames", "2"],
        ["export", "--out", "{missing}/model.onnx", "--checkpoint", "models/mlesam_demo_tiny.pt"],
        ["bench", "--json", "{missing}/bench.json", "--iters", "1"],
        ["gpu-check", "--out", "{file}/gpu.json"],
        ["eval", "--out", "{file}/eval", "--frames", "1"],
        ["demo", "--out", "{file}/demo", "--frames", "3"],
        ["train", "--config", "config/train/demo_tiny.yaml", "--out", "{file}/run"],
    ],
)
def test_every_command_checks_its_output_paths_before_any_work(
    tmp_path, capsys, arguments
) -> None:
    """A path that cannot be written is one error at once, naming the option; nothing made."""
    (tmp_path / "file").write_text("x")
    paths = {"file": tmp_path / "file", "missing": tmp_path / "missing"}
    code = main([argument.format(**paths) for argument in arguments])
    assert code == 2
    error = capsys.readouterr().err
    option = next(a for a in arguments if a in ("--out", "--json"))
    assert f"error: {option}:" in error and len(error.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_command_that_fails_half_way_leaves_nothing_it_created(tmp_path, monkeypatch) -> None:
    """synth dies after writing some frames: its new output folder (and parents) go."""
    from mlesam_ros.data import export

    def dies_half_way(frames, out, **options):
        (Path(out) / "bag").mkdir(parents=True)
        (Path(out) / "bag" / "part.mcap").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export, "export_frames", dies_half_way)
    assert main(["synth", "--out", str(tmp_path / "new" / "drive"), "--frames", "1"]) == 1
    assert list(tmp_path.iterdir()) == []
