"""README and docs/: the parameter reference matches the code, and the pages speak to users."""

from __future__ import annotations

import re
from pathlib import Path

from mlesam_ros.pipeline.parameters import parameter_table

ROOT = Path(__file__).resolve().parents[1]
TABLE_START = "<!-- parameter table: generated, do not edit by hand -->"
TABLE_END = "<!-- end of parameter table -->"
REGENERATE = (
    "regenerate it: python -c 'from mlesam_ros.pipeline.parameters import parameter_table; "
    "print(parameter_table())' and paste the output between the markers"
)
# Words about how the package was built, not about what it does.
BUILD_HISTORY = re.compile(r"session|this stop|previous stop|issue [0-9]|this VM", re.IGNORECASE)
# A git commit: 7 to 40 hex digits with at least one letter and one digit, standing alone.
COMMIT_HASH = re.compile(
    r"(?<![\w./-])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}(?![\w-])"
)


def _user_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_parameter_page_holds_exactly_the_generated_table() -> None:
    text = (ROOT / "docs" / "parameters.md").read_text()
    assert text.count(TABLE_START) == 1 and text.count(TABLE_END) == 1, "markers missing"
    between = text.split(TABLE_START)[1].split(TABLE_END)[0].strip()
    assert between == parameter_table(), f"docs/parameters.md is out of date; {REGENERATE}"


def test_user_pages_carry_no_build_history() -> None:
    for page in _user_pages():
        for number, line in enumerate(page.read_text().splitlines(), start=1):
            where = f"{page.relative_to(ROOT)}:{number}: {line.strip()}"
            assert not BUILD_HISTORY.search(line), where
            assert not COMMIT_HASH.search(line), where


def test_history_patterns_catch_what_they_are_for() -> None:
    for line in ("no GPU was available to the session", "as issue 15 reports", "on this VM",
                 "against c57895b", "git worktree add /tmp/old 2b90b9f"):  # fmt: skip
        assert BUILD_HISTORY.search(line) or COMMIT_HASH.search(line), line
    for line in ("sam_vit_b_01ec64.pth", "1920x1080", "p50 12.6 ms", "`deadline` and `decade`",
                 "arXiv 2412.04220", "rgb8/bgr8"):  # fmt: skip
        assert not (BUILD_HISTORY.search(line) or COMMIT_HASH.search(line)), line
