"""Modality encodings and joint transforms."""

import numpy as np
import pytest

from mlesam_ros.data.classes import (
    CITYSCAPES,
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    DELIVER,
    DELIVER_CLASSES,
    DELIVER_PALETTE,
    IGNORE_INDEX,
    get_class_set,
)
from mlesam_ros.data.encode import decode_depth, encode_depth, encode_rgb, encode_thermal
from mlesam_ros.data.transforms import (
    crop,
    hflip,
    normalize,
    resize,
    to_model_input,
    train_transforms,
)


def test_class_sets_follow_the_reference_order():
    assert len(DELIVER_CLASSES) == 25 and DELIVER_PALETTE.shape == (25, 3)
    assert DELIVER_CLASSES[0] == "Building" and DELIVER_CLASSES[12] == "Sky"
    assert DELIVER_CLASSES[24] == "Truck" and tuple(DELIVER_PALETTE[6]) == (128, 64, 128)
    assert len(CITYSCAPES_CLASSES) == 19 and CITYSCAPES_PALETTE.shape == (19, 3)
    assert CITYSCAPES.index("car") == 13 and DELIVER.index("cars") == 9
    assert IGNORE_INDEX == 255
    colours = DELIVER.colorize(np.array([[6, 255]]))
    assert tuple(colours[0, 0]) == (128, 64, 128) and tuple(colours[0, 1]) == (0, 0, 0)
    with pytest.raises(ValueError, match="choose from"):
        get_class_set("kitti")


def test_depth_encoding_is_monotone_with_invalid_zero_and_round_trips():
    depth = np.array([[0.0, np.nan, 1.0, 5.0, 20.0, 79.0]], dtype=np.float32)
    encoded = encode_depth(depth)
    assert encoded.shape == (1, 6, 3) and encoded.dtype == np.uint8
    assert (encoded[0, :2] == 0).all() and (encoded[0, 2:] > 0).all()
    assert np.all(np.diff(encoded[0, 2:, 0].astype(int)) < 0)  # inverse depth falls
    assert np.all(np.diff(encoded[0, 2:, 1].astype(int)) > 0)  # log and linear rise
    assert np.all(np.diff(encoded[0, 2:, 2].astype(int)) > 0)
    decoded = decode_depth(encoded)
    np.testing.assert_allclose(decoded[0, 2:], depth[0, 2:], rtol=0.02)
    with pytest.raises(ValueError, match="depth: expected"):
        encode_depth(np.zeros((2, 2, 2)))


def test_thermal_encoding_uses_the_range_and_replicates():
    thermal = np.array([[29000, 30000, 31000]], dtype=np.uint16)
    encoded = encode_thermal(thermal, value_range=(29000, 31000))
    assert encoded.shape == (1, 3, 3)
    np.testing.assert_array_equal(encoded[0, :, 0], [0, 128, 255])
    assert (encoded[..., 0] == encoded[..., 2]).all()
    assert encode_thermal(np.full((4, 4), 500, np.uint16)).max() == 0  # flat frame
    with pytest.raises(ValueError, match="uint8"):
        encode_rgb(np.zeros((2, 2, 3), np.float32))


def _sample(height=6, width=8, modalities=3):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    images = np.stack([base] * modalities)  # identical content → must stay identical
    labels = np.arange(height * width).reshape(height, width) % 25
    return {"images": images, "present": np.array([True, False, True]), "labels": labels,
            "modalities": ("rgb", "thermal", "rgb")}


def test_geometric_transforms_move_all_modalities_and_labels_together():
    sample = _sample()
    flipped = hflip(sample)
    np.testing.assert_array_equal(flipped["labels"], sample["labels"][:, ::-1])
    np.testing.assert_array_equal(flipped["images"][2], sample["images"][2][:, ::-1])
    cropped = crop(sample, 2, 3, 6, 6)  # runs past the bottom and right: padded
    assert cropped["images"].shape == (3, 6, 6, 3)
    np.testing.assert_array_equal(cropped["labels"][:4, :5], sample["labels"][2:, 3:])
    assert (cropped["labels"][4:] == IGNORE_INDEX).all() and cropped["images"][:, 4:].max() == 0
    assert (cropped["labels"][:, 5] == IGNORE_INDEX).all()
    big = resize(sample, (12, 16))
    doubled = np.repeat(np.repeat(sample["labels"], 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(big["labels"], doubled)
    augmented = train_transforms((5, 7))(sample, np.random.default_rng(1))
    assert augmented["images"].shape == (3, 5, 7, 3) and augmented["labels"].shape == (5, 7)
    for m in (1, 2):
        np.testing.assert_array_equal(augmented["images"][0], augmented["images"][m])
    assert set(np.unique(augmented["labels"])) <= set(range(25)) | {IGNORE_INDEX}


def test_model_input_layout_zeroes_absent_modalities_and_normalises():
    model_input = to_model_input(_sample())
    assert model_input["images"].shape == (3, 3, 6, 8)
    assert model_input["images"].dtype == np.float32 and model_input["labels"].dtype == np.int64
    assert model_input["images"][1].max() == 0 and model_input["images"][0].max() > 0
    normalised = normalize(model_input["images"], ("rgb", "depth", "lidar"))
    np.testing.assert_allclose(normalised[1], -127.5 / 64.0)
    with pytest.raises(ValueError, match="3 modalities but 2"):
        normalize(model_input["images"], ("rgb", "depth"))


def test_depth_encoding_codes_match_the_stacked_reference_even_on_half_ties():
    """Codes equal the stacked form the shipped models were trained with, ties included.

    There the float32 channels met the float64 log channel in one stack, so ``254 * value``
    was rounded in float64: 14.890748 m gives 46.5 in float32 but just above it in float64,
    so code 48, where a float32 shortcut would give 47.
    """
    rng = np.random.default_rng(4)
    depth = rng.uniform(-5, 120, (60, 70)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.2] = np.nan
    depth[rng.random(depth.shape) < 0.05] = np.inf
    depth[0, 0] = np.float32(14.890748)
    near, far = 0.3, 80.0
    valid = np.isfinite(depth) & (depth > 0)
    z = np.clip(np.where(valid, depth, far), near, far)
    channels = np.stack([(1.0 / z - 1.0 / far) / (1.0 / near - 1.0 / far),
                         np.log(z / near) / np.log(far / near), (z - near) / (far - near)],
                        axis=-1)  # fmt: skip
    expected = np.where(valid[..., None], 1.0 + np.rint(254.0 * channels), 0).astype(np.uint8)
    encoded = encode_depth(depth, (near, far))
    np.testing.assert_array_equal(encoded, expected)
    assert encoded[0, 0, 2] == 48
