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
