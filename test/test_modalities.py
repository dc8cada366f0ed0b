import pytest

from mlesam_ros.modalities import MODALITIES, PIXEL_MEAN, PIXEL_STD, parse_modalities


def test_parse_keeps_order_and_accepts_strings() -> None:
    assert parse_modalities("lidar, rgb") == ("lidar", "rgb")
    assert parse_modalities(["rgb", "depth"]) == ("rgb", "depth")


@pytest.mark.parametrize(
    ("value", "message"),
    [("rgb,radar", "unknown radar"), ("", "at least one"), ("rgb,rgb", "duplicate")],
)
def test_parse_errors_name_the_problem(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_modalities(value)


def test_every_modality_has_normalisation() -> None:
    for name in MODALITIES:
        assert len(PIXEL_MEAN[name]) == 3
        assert min(PIXEL_STD[name]) > 0
