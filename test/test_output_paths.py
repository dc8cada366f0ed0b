"""Output paths: checked before any work, one writer at a time, nothing left by a failure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlesam_ros.output_paths import (
    CreatedOutputs,
    OutputLock,
    check_output_file,
    check_output_folder,
)

HOLD_LOCK = """
import sys, time
from mlesam_ros.output_paths import OutputLock
lock = OutputLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def hold_lock(target: Path) -> subprocess.Popen:
    """Another process that holds ``target``'s output lock until killed."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(target)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_writer_is_refused_with_the_owners_pid(tmp_path) -> None:
    """A live owner (another process, or this one) keeps the lock; a dead owner loses it."""
    out = tmp_path / "out"
    holder = hold_lock(out)
    try:
        with pytest.raises(ValueError, match=rf"being written by another mlesam run \(pid "
                                             rf"{holder.pid}\)"):  # fmt: skip
            OutputLock(out).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)  # killed: no chance to clean up
        holder.wait()
    assert (tmp_path / "out.lock").exists()  # left behind by the dead owner ...
    lock = OutputLock(out).acquire()  # ... and no obstacle
    assert lock.previous_owner == holder.pid
    with pytest.raises(ValueError, match=rf"\(pid {os.getpid()}\)"):
        OutputLock(out).acquire()  # a second writer in the same process is refused too
    lock.release()
    assert not (tmp_path / "out.lock").exists()
    with OutputLock(out) as again:
        assert again.previous_owner is None


@pytest.mark.parametrize(
    ("check", "path", "error"),
    [
        (check_output_file, "missing/dir/s.json", r"folder .*missing/dir' does not exist"),
        (check_output_file, "folder", r"is a folder; give a file name"),
        (check_output_file, "file/s.json", r"folder .*file' is not a folder"),
        (check_output_folder, "file/sub/out", r"cannot create .*: .*file' is a file"),
        (check_output_folder, "file", r"is a file, not a folder"),
    ],
)
def test_bad_output_paths_are_refused_before_any_work(tmp_path, check, path, error) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=error):
        check(tmp_path / path, "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]


def test_good_output_paths_pass_and_create_nothing(tmp_path) -> None:
    assert check_output_file(tmp_path / "s.json", "--summary") == tmp_path / "s.json"
    assert check_output_file(None, "--summary") is None
    assert check_output_folder(tmp_path / "a" / "b" / "out", "--out") == tmp_path / "a/b/out"
    (tmp_path / "old").mkdir()
    check_output_folder(tmp_path / "old", "--out")
    with pytest.raises(ValueError, match="already exists"):
        check_output_folder(tmp_path / "old", "--out", new=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="no /proc here")
def test_an_unwritable_folder_is_found_by_trying(tmp_path) -> None:
    """/proc is read-only for everyone, root included: the probe finds it, bits would not."""
    with pytest.raises(ValueError, match="is not writable"):
        check_output_file(Path("/proc/s.json"), "--summary")


def test_a_failure_removes_what_the_command_created_and_nothing_else(tmp_path) -> None:
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "old.txt").write_text("old")
    outputs = [tmp_path / "new" / "deep" / "out", tmp_path / "kept" / "old.txt",
               tmp_path / "kept" / "report.json"]  # fmt: skip
    with pytest.raises(RuntimeError), CreatedOutputs(*outputs):
        outputs[0].mkdir(parents=True)
        (outputs[0] / "x.bin").write_bytes(b"1")
        outputs[2].write_text("half")
        raise RuntimeError("late failure")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["old.txt"]
    # Interrupted: what was written stays (the user asked to stop, nothing failed).
    with pytest.raises(KeyboardInterrupt), CreatedOutputs(outputs[2]):
        outputs[2].write_text("partial")
        raise KeyboardInterrupt
    assert outputs[2].exists()
    # A new parent folder that something else now lives in is kept.
    created = CreatedOutputs(tmp_path / "shared" / "a", contents=False)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "b").write_text("another run")
    created.discard()
    assert (tmp_path / "shared" / "b").exists()
