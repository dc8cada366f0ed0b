"""``mlesam replay``'s errors: one line naming the problem, no traceback, nothing left behind."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import Record, drive_records, tiny_onnx, write_bag

from mlesam_ros.cli import main
from mlesam_ros.data import topics
from mlesam_ros.msgs import message_class
from mlesam_ros.replay import commands


def run_cli(capsys, *argv: str) -> tuple[int, list[str]]:

    code = main(list(argv))
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


@pytest.fixture
def cli_bag(tmp_path, frames) -> Path:
    return write_bag(tmp_path / "bag", drive_records(frames[:2]))


def _params(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text("/**:\n  ros__parameters:\n" + body)
    return path


def _truncated(tmp_path: Path, bag: Path) -> Path:
    mcap = next(bag.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    return bag


def _compressed_rgb(tmp_path: Path, frames) -> Path:
    recs = []
    for rec in drive_records(frames[:2]):
        if rec.topic == topics.RGB_IMAGE_TOPIC:
            compressed = message_class("sensor_msgs/msg/CompressedImage")(
                header=rec.message.header, format="jpeg", data=np.zeros(16, np.uint8))
            rec = Record(rec.topic, "sensor_msgs/msg/CompressedImage", compressed, rec.log_ns)
        recs.append(rec)
    return write_bag(tmp_path / "compressed", recs)


def _unknown_op(tmp_path: Path) -> Path:
    """Inputs, outputs and metadata all right, but an operator no runtime knows."""
    import onnx

    path = tiny_onnx(tmp_path / "unknown_op.onnx")
    model = onnx.load(str(path))
    model.graph.node[1].op_type = "NoSuchOperator"
    onnx.save(model, str(path))
    return path


def _evil_checkpoint(tmp_path: Path) -> Path:
    import torch

    class Payload:
        def __reduce__(self):
            return (os.makedirs, (str(tmp_path / "EXECUTED"),))

    path = tmp_path / "evil.pt"
    torch.save({"format": "mlesam_ros.checkpoint", "payload": Payload()}, path)
    return path


CLI_CASES = {
    "truncated-mcap": (lambda tp, bag, fr, model: ["--bag", str(_truncated(tp, bag)),
                                                   "--model", str(model)],
                       ["cannot be read", "truncated"]),
    "params-inf": (lambda tp, bag, fr, model: ["--bag", str(bag), "--model", str(model),
                                               "--params",
                                               str(_params(tp, "    sync.timeout_s: .inf\n"))],
                   ["sync.timeout_s", "finite"]),
    "params-malformed": (lambda tp, bag, fr, model: [
        "--bag", str(bag), "--model", str(model),
        "--params", str(_params(tp, "    topics.rgb: [unclosed\n"))],
        ["not valid YAML", "line "]),
    "random-onnx": (lambda tp, bag, fr, model: [
        "--bag", str(bag), "--model", str(_write(tp / "random.onnx", os.urandom(4096)))],
        ["not a readable ONNX file"]),
    "onnx-input-names": (lambda tp, bag, fr, model: [
        "--bag", str(bag), "--model",
        str(tiny_onnx(tp / "names.onnx", input_names=("image", "mask")))],
        ["graph inputs", "'images'"]),
    "onnx-vs-metadata": (lambda tp, bag, fr, model: [
        "--bag", str(bag), "--model", str(tiny_onnx(tp / "two.onnx", modalities_in_graph=2))],
        ["input 'images' has shape", "metadata"]),
    "onnx-unloadable": (lambda tp, bag, fr, model: [
        "--bag", str(bag), "--backend", "onnxruntime", "--model", str(_unknown_op(tp))],
        ["onnxruntime cannot load", "re-export"]),
    "compressed-rgb": (lambda tp, bag, fr, model: ["--bag", str(_compressed_rgb(tp, fr)),
                                                   "--model", str(model)],
                       ["CompressedImage", "topics.rgb"]),
    "missing-rgb": (lambda tp, bag, fr, model: ["--bag", str(bag), "--model", str(model),
                                                "--params",
                                                str(_params(tp, "    topics.rgb: /cam/x\n"))],
                    ["'/cam/x' is not in bag", "'/lidar/points' ('sensor_msgs/msg/PointCloud2')"]),
    "refused-checkpoint": (lambda tp, bag, fr, model: ["--bag", str(bag), "--model",
                                                       str(_evil_checkpoint(tp))],
                           ["refused: not a plain-tensor checkpoint"]),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_errors_are_one_line_and_leave_no_output(
    tmp_path, frames, model_path, cli_bag, capsys, case
) -> None:
    """Each bad input is one line naming the problem, exit code 2, nothing on disk."""
    build, needles = CLI_CASES[case]
    argv = build(tmp_path, cli_bag, frames, model_path)
    code, lines = run_cli(capsys, "replay", *argv, "--out", str(tmp_path / "out"), "--quiet")
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("mlesam replay: error: "), lines
    for needle in needles:
        assert needle in lines[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
    assert not (tmp_path / "EXECUTED").exists()


def test_debug_flag_and_env_var_show_the_traceback(tmp_path, cli_bag, capsys, monkeypatch):

    argv = ["replay", "--bag", str(cli_bag), "--out", str(tmp_path / "out"),
            "--model", str(tmp_path / "absent.onnx"), "--quiet"]
    assert run_cli(capsys, *argv)[0] == 2
    with pytest.raises(FileNotFoundError, match=r"absent\.onnx"):
        main(["--debug", *argv])
    monkeypatch.setenv("MLESAM_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        main(argv)


def test_unexpected_errors_are_one_line_with_their_type(capsys, monkeypatch) -> None:

    def boom(args) -> int:
        raise KeyError("state_dict")

    monkeypatch.setattr(commands, "_run_replay", boom)
    code, lines = run_cli(capsys, "replay", "--bag", "x", "--out", "y")
    assert code == 1 and len(lines) == 1
    assert "KeyError: 'state_dict'" in lines[0] and "--debug" in lines[0]
