"""Where commands write: checked before any work, locked while written, removed on failure.

Three rules every command that writes follows:

1. **Checked first.** :func:`check_output_file` and :func:`check_output_folder` run before
   the work starts, so a typo in ``--summary`` does not fail after an hour of replay. A file's
   folder must exist; a new folder's missing parents are created, so its nearest existing
   ancestor must be a folder. Writability is probed by creating (and removing) a file there:
   permission bits alone say nothing for root or a read-only mount.
2. **One writer.** :class:`OutputLock` holds ``<out>.lock`` (with the owner's pid in it)
   under ``flock`` for as long as a run writes ``out``; a second run is refused with that
   pid. The kernel drops the lock when its owner dies, so an output abandoned by a killed run
   is recognised as such and may be replaced.
3. **Nothing left by a failure.** :class:`CreatedOutputs` remembers which of the outputs (and
   their parent folders) did not exist before the command and removes them when the command
   fails with an error. An interrupted command (Ctrl-C) keeps what it wrote.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from mlesam_ros.text import quote


def _probe_writable(folder: Path, option: str, target: Path) -> None:
    """Raise ``ValueError`` unless a file can be created in ``folder``."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".mlesam-probe-"):
            pass
    except OSError as error:
        raise ValueError(
            f"{option}: cannot write {quote(str(target), 200)}: folder "
            f"{quote(str(folder), 200)} is not writable ({error.strerror or error}); choose "
            f"another {option}"
        ) from None


def check_output_file(path: str | Path | None, option: str) -> Path | None:
    """Check before any work that ``path`` can be written as a file (None passes through).

    Its folder must exist and be writable, and ``path`` must not be a folder.
    """
    if path is None:
        return None
    path = Path(path)
    shown = quote(str(path), 200)
    if path.is_dir():
        raise ValueError(f"{option}: {shown} is a folder; give a file name")
    folder = path.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ValueError(
            f"{option}: folder {quote(str(folder), 200)} {what}; create it first or choose "
            f"another {option}"
        )
    _probe_writable(folder, option, path)
    return path


def check_output_folder(path: str | Path, option: str, *, new: bool = False) -> Path:
    """Check before any work that folder ``path`` can be created (or written into).

    ``new``: it must not exist yet. Missing parents will be created, so the nearest existing
    ancestor must be a writable folder.
    """
    path = Path(path)
    shown = quote(str(path), 200)
    if path.exists():
        if new:
            raise ValueError(f"{option}: {shown} already exists; remove it or choose another "
                             f"{option}")  # fmt: skip
        if not path.is_dir():
            raise ValueError(f"{option}: {shown} is a file, not a folder")
        _probe_writable(path, option, path)
        return path
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(
            f"{option}: cannot create {shown}: {quote(str(ancestor), 200)} is a file, not a "
            "folder"
        )
    _probe_writable(ancestor, option, path)
    return path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class CreatedOutputs:
    """Remove the outputs a command created (and the folders made for them) if it fails.

    Give the outputs before the command runs; on leaving the ``with`` block by an exception
    (not ``KeyboardInterrupt``) each output that did not exist then is removed, and so are
    the parent folders that did not exist then, as long as they are empty (another run may be
    writing beside it). ``contents=False`` leaves the outputs themselves to their writer and
    removes only the new parent folders. :meth:`discard` does it explicitly.
    """

    def __init__(self, *paths: str | Path | None, contents: bool = True) -> None:
        self.outputs: list[Path] = []
        self.parents: list[Path] = []  # deepest first
        for path in paths:
            if path is None:
                continue
            path = Path(path).absolute()
            if contents and not path.exists():
                self.outputs.append(path)
            parent = path.parent
            while not parent.exists() and parent != parent.parent:
                self.parents.append(parent)
                parent = parent.parent

    def discard(self) -> None:
        """Remove every output created since construction, then its new empty parent folders."""
        for path in self.outputs:
            _remove(path)
        for folder in sorted(set(self.parents), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):  # not empty: something else lives there now
                folder.rmdir()

    def __enter__(self) -> CreatedOutputs:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if error is not None and isinstance(error, Exception):
            self.discard()


class OutputLock:
    """Exclusive right to write ``target``: ``flock`` on ``<target>.lock``, which holds our pid.

    :meth:`acquire` raises ``ValueError`` naming the owner's pid when another live process
    writes ``target``. ``previous_owner`` is the pid a dead owner left in the lock file (its
    abandoned output may be replaced), or None. The folder of ``target`` must exist.
    """

    def __init__(self, target: str | Path, option: str = "out") -> None:
        self.target = Path(target)
        self.path = self.target.with_name(self.target.name + ".lock")
        self.option = option
        self.previous_owner: int | None = None
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        """Take the lock or raise ``ValueError`` (another live process holds it)."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_pid(fd)
                os.close(fd)
                raise ValueError(
                    f"{self.option}: {quote(str(self.target), 200)} is being written by "
                    f"another mlesam run (pid {owner if owner is not None else 'unknown'}); "
                    f"wait for it to finish or choose another --{self.option}"
                ) from None
            # The file we locked may have been unlinked by its previous owner meanwhile: only
            # a lock on the file that is at the path now excludes the next run.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.previous_owner = _read_pid(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or "x")
    except (ValueError, OSError):
        return None


__all__ = ["CreatedOutputs", "OutputLock", "check_output_file", "check_output_folder"]
