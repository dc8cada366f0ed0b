"""DELIVER and MUSES loaders on tiny fake trees in the official layouts; the synthetic set."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from mlesam_ros.data.classes import IGNORE_INDEX
from mlesam_ros.data.loaders import DeliverDataset, MusesDataset
from mlesam_ros.data.synthetic_dataset import SyntheticDataset
from mlesam_ros.data.transforms import eval_transforms

H, W = 8, 10


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def make_deliver(root: Path) -> None:
    """Two sun/train samples, one fog/train, one sun/val; labels put id+1 in the red channel."""
    samples = [("sun", "train", "MAP_1_point102", "000001"), ("sun", "train", "MAP_1_point102",
               "000002"), ("fog", "train", "MAP_4_point7", "000010"),
               ("sun", "val", "MAP_9_point1", "000020")]  # fmt: skip
    for n, (condition, split, scene, stem) in enumerate(samples):
        for folder, token, value in (("img", "rgb", 10), ("hha", "depth", 20),
                                     ("lidar", "lidar", 30), ("event", "event", 40)):
            image = np.full((H, W, 3), value + n, np.uint8)
            _write(root / folder / condition / split / scene / f"{stem}_{token}_front.png", image)
        label = np.zeros((H, W, 3), np.uint8)  # BGR on disk: red is index 2
        label[:, :, 2] = (np.arange(H * W).reshape(H, W) % 27).astype(np.uint8)  # 0..26
        label[0, 0, 2] = 255
        label[:, :, 1] = 99  # green/blue carry instance data in DELIVER; must be ignored
        _write(root / "semantic" / condition / split / scene / f"{stem}_semantic_front.png", label)


def make_muses(root: Path) -> None:
    for weather, time, name in (("clear", "day", "REC0006_frame_040000"),
                                ("fog", "night", "REC0010_frame_000100")):  # fmt: skip
        relative = Path("train") / weather / time
        for folder, suffix, value in (("frame_camera", "_frame_camera.png", 50),
                                      ("lidar", "_lidar.png", 60),
                                      ("event_camera", "_event_camera.png", 70)):
            image = np.full((H, W, 3), value, np.uint8)
            _write(root / folder / relative / f"{name}{suffix}", image)
        label = (np.arange(H * W).reshape(H, W) % 21).astype(np.uint8)  # 19, 20 are invalid
        label[0, 0] = 255
        _write(root / "gt_semantic" / relative / f"{name}_gt_labelTrainIds.png", label)


def test_deliver_reads_modalities_in_order_and_shifts_labels(tmp_path):
    make_deliver(tmp_path)
    dataset = DeliverDataset(tmp_path, "train", ("lidar", "rgb", "thermal", "depth"))
    assert len(dataset) == 3
    assert [Path(p).name[:6] for p in map(str, dataset.files)] == ["000010", "000001", "000002"]
    sample = dataset[1]
    assert sample["images"].shape == (4, 3, H, W) and sample["images"].dtype == np.float32
    np.testing.assert_array_equal(sample["present"], [True, True, False, True])
    assert sample["images"][0].max() == sample["images"][0].min() == 30  # lidar first
    assert sample["images"][1].max() == 10 and sample["images"][3].max() == 20
    assert sample["images"][2].max() == 0  # DELIVER has no thermal camera
    raw = np.arange(H * W).reshape(H, W) % 27
    labels = sample["labels"]
    assert labels.dtype == np.int64 and labels.shape == (H, W)
    assert labels[0, 0] == IGNORE_INDEX  # stored 255
    np.testing.assert_array_equal(labels[raw == 0], IGNORE_INDEX)  # unlabelled
    np.testing.assert_array_equal(labels[(raw >= 1) & (raw <= 25)],
                                  raw[(raw >= 1) & (raw <= 25)] - 1)  # fmt: skip
    np.testing.assert_array_equal(labels[raw == 26], IGNORE_INDEX)  # out of range
    assert sample["condition"] == "sun" and sample["path"].endswith("000001_rgb_front.png")


def test_deliver_filters_and_errors(tmp_path):
    make_deliver(tmp_path)
    fog = DeliverDataset(tmp_path, "train", ("rgb",), conditions=["fog"])
    assert len(fog) == 1 and fog[0]["condition"] == "fog"
    assert len(DeliverDataset(tmp_path, "val", ("rgb", "depth"))) == 1
    with pytest.raises(ValueError, match="conditions: unknown"):
        DeliverDataset(tmp_path, "train", ("rgb",), conditions=["snow"])
    with pytest.raises(ValueError, match="split: unknown"):
        DeliverDataset(tmp_path, "dev", ("rgb",))
    with pytest.raises(FileNotFoundError, match="not a directory"):
        DeliverDataset(tmp_path / "nope", "train", ("rgb",))
    with pytest.raises(FileNotFoundError, match="no samples"):
        DeliverDataset(tmp_path, "test", ("rgb",))
    next((tmp_path / "lidar").rglob("000002_lidar_front.png")).unlink()
    with pytest.raises(ValueError, match="lidar: 2 files for 3 RGB images"):
        DeliverDataset(tmp_path, "train", ("rgb", "lidar"))
    for path in (tmp_path / "event").rglob("*.png"):
        path.unlink()
    for path in sorted((tmp_path / "event").rglob("*"), reverse=True):
        path.rmdir()
    (tmp_path / "event").rmdir()
    with pytest.raises(FileNotFoundError, match=r"event: folder .* is missing"):
        DeliverDataset(tmp_path, "train", ("rgb", "event"))
    bad = next((tmp_path / "hha").rglob("000001_depth_front.png"))
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot decode"):
        DeliverDataset(tmp_path, "train", ("rgb", "depth"))[1]


def test_muses_reads_projected_modalities_and_filters(tmp_path):
    make_muses(tmp_path)
    dataset = MusesDataset(tmp_path, "train", ("rgb", "depth", "lidar", "event"))
    assert len(dataset) == 2
    sample = dataset[0]
    np.testing.assert_array_equal(sample["present"], [True, False, True, True])
    assert sample["images"][2].max() == 60 and sample["images"][3].max() == 70
    raw = np.arange(H * W).reshape(H, W) % 21
    labels = sample["labels"]
    assert labels[0, 0] == IGNORE_INDEX
    keep = raw < 19
    keep[0, 0] = False
    np.testing.assert_array_equal(labels[keep], raw[keep])
    np.testing.assert_array_equal(labels[raw >= 19], IGNORE_INDEX)
    assert sample["condition"] == "clear_day"
    night = MusesDataset(tmp_path, "train", ("rgb",), times_of_day=["night"])
    assert len(night) == 1 and night[0]["condition"] == "fog_night"
    assert len(MusesDataset(tmp_path, "train", ("rgb",), weathers=["fog", "clear"])) == 2
    with pytest.raises(ValueError, match="weathers: unknown"):
        MusesDataset(tmp_path, "train", ("rgb",), weathers=["sandstorm"])
    with pytest.raises(ValueError, match="modalities: unknown"):
        MusesDataset(tmp_path, "train", ("rgb", "radar"))


def test_transform_applies_to_loaded_samples(tmp_path):
    make_deliver(tmp_path)
    resize = eval_transforms((4, 5))
    dataset = DeliverDataset(tmp_path, "train", ("rgb", "depth"), transform=resize)
    sample = dataset[1]
    assert sample["images"].shape == (2, 3, 4, 5) and sample["labels"].shape == (4, 5)


def test_synthetic_dataset_matches_the_model_layout():
    dataset = SyntheticDataset(4, ("rgb", "depth", "thermal", "lidar", "event"), size=(48, 64),
                               conditions=("sun", "night"), frames_per_drive=2,
                               lidar_beams=16)  # fmt: skip
    first, third = dataset[0], dataset[2]
    assert first["images"].shape == (5, 3, 48, 64) and first["images"].dtype == np.float32
    np.testing.assert_array_equal(first["present"], [True, True, True, True, False])
    assert first["images"].max() <= 255 and first["images"][4].max() == 0
    assert first["condition"] == "sun" and third["condition"] == "night"
    assert first["labels"].dtype == np.int64 and first["labels"].max() < 25
    np.testing.assert_array_equal(dataset[0]["images"], first["images"])  # deterministic
    with pytest.raises(IndexError):
        dataset.frame(4)
