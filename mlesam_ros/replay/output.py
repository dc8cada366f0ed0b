"""The replay's output bag: written beside ``out`` and moved there only when the run completes.

A failed run leaves nothing; an interrupted (or killed) one leaves a ``<out>.partial`` folder
that says what it is. The replay holds ``out``'s lock
(:class:`~mlesam_ros.output_paths.OutputLock`) while it writes, so a partial output found at
the start was abandoned by a run that no longer exists and may be replaced.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

LOG = logging.getLogger("mlesam.replay")
STORAGES = ("mcap", "sqlite3")


def bag_storage(path: str | Path) -> str:
    """``mcap`` or ``sqlite3`` from a rosbag2 folder's files (or a single ``.mcap``/``.db3``)."""
    path = Path(path)
    files = [path] if path.is_file() else list(path.iterdir()) if path.is_dir() else []
    suffixes = {file.suffix for file in files}
    if ".mcap" in suffixes:
        return "mcap"
    if ".db3" in suffixes:
        return "sqlite3"
    raise ValueError(f"bag {path}: no .mcap or .db3 file found; is it a rosbag2 folder?")



class PartialOutput:
    """The output bag, opened at the first write inside ``<out>.partial/`` and moved on success.

    Opening lazily means nothing exists on disk until parameters, topics and the model have
    passed (the first publication is the latched LabelInfo at the end of configure). A
    rosbags ``Writer`` names its storage file after its folder, so the bag is written to
    ``<out>.partial/<out.name>/`` and that folder is renamed to ``out``: the files inside
    keep their final names.
    """

    def __init__(
        self, out: Path, storage: str, logger: Any = LOG, previous_owner: int | None = None
    ) -> None:
        self.out, self.storage, self.logger = out, storage, logger
        self.partial = out.with_name(out.name + ".partial")
        self.previous_owner = previous_owner
        self._writer: Any = None

    @property
    def opened(self) -> bool:
        """Whether anything has been written to disk yet."""
        return self._writer is not None

    def _open(self) -> Any:
        from rosbags.rosbag2 import StoragePlugin, Writer

        if self.partial.exists():
            # The caller holds the output lock (mlesam_ros.output_paths.OutputLock): whoever
            # wrote this partial output is no longer running.
            owner = f" (pid {self.previous_owner})" if self.previous_owner else ""
            self.logger.warning(
                f"mlesam: removing {self.partial}, the partial output an earlier replay"
                f"{owner} abandoned (it no longer runs)"
            )
            shutil.rmtree(self.partial)
        self.partial.mkdir(parents=True)
        plugin = StoragePlugin.MCAP if self.storage == "mcap" else StoragePlugin.SQLITE3
        writer = Writer(self.partial / self.out.name, version=9, storage_plugin=plugin)
        writer.open()
        self._writer = writer
        return writer

    def add_connection(self, *args: Any, **kwargs: Any) -> Any:
        """``Writer.add_connection``, opening the bag first if needed."""
        return (self._writer or self._open()).add_connection(*args, **kwargs)

    def write(self, *args: Any) -> None:
        """``Writer.write``."""
        self._writer.write(*args)

    def finish(self) -> None:
        """Close the bag (writes ``metadata.yaml``) and move it to ``out``."""
        writer = self._writer or self._open()
        writer.close()
        (self.partial / self.out.name).rename(self.out)
        self.partial.rmdir()

    def abandon(self, keep: bool) -> str:
        """Close after a failure; keep (``keep``) or remove what was written. Says which."""
        if self._writer is None:
            return "no output written"
        try:
            self._writer.close()
        except Exception as error:  # the close of a broken bag must not hide the first error
            self.logger.warning(f"mlesam: closing the partial output failed: {error}")
        if keep:
            return f"partial output kept in {self.partial / self.out.name}"
        shutil.rmtree(self.partial, ignore_errors=True)
        return f"partial output {self.partial} removed"
