"""A logger wrapper that cannot raise under rclpy (kept free of rclpy so CI tests it).

rclpy remembers the severity of every logging *call site* (function, file, line) and raises
``ValueError: Logger severity cannot be changed between calls`` when one line logs at two
levels, e.g. ``getattr(logger, level)(text)``; inside frame processing that cost a frame.
:class:`SeverityLogger` gives each severity its own call site, so :meth:`SeverityLogger.log`
can pick the level at run time, and it swallows anything a logger throws (logging must never
take a frame, or the node, down).
"""

from __future__ import annotations

import sys
from typing import Any

LEVELS = ("debug", "info", "warning", "error", "fatal")


class SeverityLogger:
    """``debug``/``info``/``warning``/``error``/``fatal`` over any logger, one call site each."""

    def __init__(self, logger: Any) -> None:
        self._logger = logger
        self._by_level = {
            "debug": self.debug,
            "info": self.info,
            "warning": self.warning,
            "warn": self.warning,
            "error": self.error,
            "fatal": self.fatal,
            "critical": self.fatal,
        }

    def log(self, level: str, message: str) -> None:
        """Log ``message`` at ``level`` (a name from :data:`LEVELS`; unknown names log info)."""
        self._by_level.get(level, self.info)(message)

    def debug(self, message: str) -> None:
        """Log at DEBUG."""
        try:
            self._logger.debug(message)
        except Exception as error:  # logging must never raise
            _fallback("DEBUG", message, error)

    def info(self, message: str) -> None:
        """Log at INFO."""
        try:
            self._logger.info(message)
        except Exception as error:
            _fallback("INFO", message, error)

    def warning(self, message: str) -> None:
        """Log at WARN."""
        try:
            self._logger.warning(message)
        except Exception as error:
            _fallback("WARN", message, error)

    def error(self, message: str) -> None:
        """Log at ERROR."""
        try:
            self._logger.error(message)
        except Exception as error:
            _fallback("ERROR", message, error)

    def fatal(self, message: str) -> None:
        """Log at FATAL (``critical`` for a ``logging.Logger``)."""
        method = getattr(self._logger, "fatal", None) or self._logger.critical
        try:
            method(message)
        except Exception as error:
            _fallback("FATAL", message, error)


def _fallback(level: str, message: str, error: Exception) -> None:
    print(f"[{level}] {message} (logger failed: {type(error).__name__}: {error})", file=sys.stderr)
