from pathlib import Path

import pytest

main_with_errors = pytest.importorskip(
    "ament_flake8.main", reason="ament_flake8 is installed only with ROS 2"
).main_with_errors


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8() -> None:
    config = Path(__file__).resolve().parents[1] / "setup.cfg"
    rc, errors = main_with_errors(argv=["--config", str(config)])
    assert rc == 0, f"Found {len(errors)} code style errors / warnings:\n" + "\n".join(errors)
