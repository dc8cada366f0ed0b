import pytest

main = pytest.importorskip(
    "ament_pep257.main", reason="ament_pep257 is installed only with ROS 2"
).main


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257() -> None:
    rc = main(argv=[".", "test"])
    assert rc == 0, "Found code style errors / warnings"
