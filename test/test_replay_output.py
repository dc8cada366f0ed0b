"""The replay's output: created only after the input passed, never left half-written."""

from __future__ import annotations

import pytest
from conftest import drive_records, read_bag, write_bag

from mlesam_ros.msgs import header_stamp_ns
from mlesam_ros.pipeline import messages as m
from mlesam_ros.replay.run import ReplayInterrupted, replay_bag


@pytest.mark.parametrize(
    ("parameters", "error"),
    [
        ({"model.path": "/nonexistent/model.onnx"}, FileNotFoundError),
        ({"sync.timeout_s": -1.0}, ValueError),
        ({"topics.rgb": "/not/recorded"}, ValueError),
    ],
)
def test_failed_start_leaves_nothing_and_rerun_works(
    tmp_path, frames, model_path, parameters, error
) -> None:
    """A failed start leaves no out/ folder behind to block the rerun."""
    bag = write_bag(tmp_path / "in", drive_records(frames[:2]))
    out = tmp_path / "out"
    params = {"model.path": str(model_path), **parameters}
    with pytest.raises(error):
        replay_bag(bag, out, params, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    if error is FileNotFoundError:  # once: the rerun with good parameters is not blocked
        result = replay_bag(bag, out, {"model.path": str(model_path)}, progress=False)
        assert result.frames == 2 and (out / "metadata.yaml").is_file()


def test_failure_mid_run_removes_the_output_and_says_so(
    tmp_path, frames, model_path, monkeypatch
) -> None:
    """A bag that stops being readable halfway (a disk error under rosbags) fails the run."""
    from rosbags.highlevel import AnyReader

    bag = write_bag(tmp_path / "in", drive_records(frames[:3]))
    messages = AnyReader.messages

    def failing(self, *args, **kwargs):
        for count, item in enumerate(messages(self, *args, **kwargs)):
            if count == 12:
                raise OSError("disk read error")
            yield item

    monkeypatch.setattr(AnyReader, "messages", failing)
    with pytest.raises(OSError, match="disk read error") as caught:
        replay_bag(bag, tmp_path / "out", {"model.path": str(model_path)}, progress=False)
    assert any("removed" in note for note in caught.value.__notes__)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_interrupted_run_keeps_a_marked_partial_output(tmp_path, frames, model_path) -> None:
    bag = write_bag(tmp_path / "in", drive_records(frames[:3]))
    out = tmp_path / "out"
    seen = []

    def interrupt(result, record) -> None:
        seen.append(record.stamp_ns)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(ReplayInterrupted) as caught:
        replay_bag(bag, out, {"model.path": str(model_path)}, progress=False,
                   on_frame=interrupt)
    partial = tmp_path / "out.partial" / "out"
    assert str(partial) in str(caught.value)
    assert not out.exists()
    labels = read_bag(partial)[m.LABELS_TOPIC]  # closed properly: metadata.yaml, readable
    assert [header_stamp_ns(msg) for _, msg in labels] == seen
    # The rerun to the same --out is not blocked, and the stale partial output is gone.
    assert replay_bag(bag, out, {"model.path": str(model_path)}, progress=False).frames == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]


def test_a_running_replay_owns_its_out_and_a_second_is_refused(
    tmp_path, frames, model_path, caplog
) -> None:
    """The second writer is refused with the owner's pid and touches nothing; once the owner
    is dead its abandoned partial output is replaced."""
    import signal

    from test_output_paths import hold_lock

    bag = write_bag(tmp_path / "in", drive_records(frames[:2]))
    out = tmp_path / "out"
    partial = tmp_path / "out.partial"
    holder = hold_lock(out)  # a replay to the same --out, busy writing
    partial.mkdir()
    (partial / "data.mcap").write_bytes(b"being written")
    try:
        for _ in range(2):
            with pytest.raises(ValueError, match=rf"another mlesam run \(pid {holder.pid}\)"):
                replay_bag(bag, out, {"model.path": str(model_path)}, progress=False)
        assert (partial / "data.mcap").read_bytes() == b"being written"
        assert not out.exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    result = replay_bag(bag, out, {"model.path": str(model_path)}, progress=False)
    assert result.frames == 2 and (out / "metadata.yaml").is_file()
    assert not partial.exists() and not (tmp_path / "out.lock").exists()
    assert "abandoned (it no longer runs)" in caplog.text and str(holder.pid) in caplog.text


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("--summary", "missing/dir/s.json", "--summary: folder .* does not exist"),
        ("--summary", "in", "--summary: .* is a folder"),
        ("--out", "file/out", "--out: cannot create .* is a file"),
        ("--out", "in", "--out: .* already exists"),
    ],
)
def test_every_output_path_is_checked_before_any_work(
    tmp_path, frames, model_path, monkeypatch, capsys, option, value, error
) -> None:
    """A bad --summary or --out fails at once (the replay never starts), leaving nothing."""
    from mlesam_ros import cli
    from mlesam_ros.replay import run

    def replay_must_not_start(*args, **kwargs):
        raise AssertionError("the replay started before its outputs were checked")

    monkeypatch.setattr(run, "replay_bag", replay_must_not_start)
    bag = write_bag(tmp_path / "in", drive_records(frames[:1]))
    (tmp_path / "file").write_text("x")
    arguments = {"--out": str(tmp_path / "out"), "--summary": str(tmp_path / "s.json"),
                 option: str(tmp_path / value)}  # fmt: skip
    code = cli.main(["replay", "--bag", str(bag), "--model", str(model_path),
                     *(item for pair in arguments.items() for item in pair)])  # fmt: skip
    assert code == 2
    import re

    assert re.search(error, capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "in"]


def test_a_summary_that_cannot_be_written_leaves_no_out(
    tmp_path, frames, model_path, monkeypatch, capsys
) -> None:
    """Failing at the very end (the summary) removes the finished OUT too: no output of a
    failed command survives."""
    from mlesam_ros import cli
    from mlesam_ros.replay.scoring import ReplayResult

    def full_disk(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ReplayResult, "summary", full_disk)
    bag = write_bag(tmp_path / "in", drive_records(frames[:2]))
    code = cli.main(["replay", "--bag", str(bag), "--out", str(tmp_path / "deep" / "out"),
                     "--summary", str(tmp_path / "s.json"), "--model", str(model_path),
                     "--quiet"])  # fmt: skip
    assert code == 1 and "No space left on device" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
