"""Loaders for the DELIVER and MUSES folder layouts, yielding the model's sample dict.

Each sample is ``{"images": (M, 3, H, W) float32 0..255, "present": (M,) bool, "labels":
(H, W) int64 with 255 = ignore, "condition": str, "path": str}`` for the requested
``modalities`` in order. A modality the dataset does not record (e.g. thermal in DELIVER) is
zeros with ``present`` False, so one model config trains on either dataset. The classes are
plain map-style datasets (``__len__``/``__getitem__`` on numpy), which ``torch.utils.data``
loaders accept as they are; torch is not needed to read data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlesam_ros.data.classes import IGNORE_INDEX
from mlesam_ros.data.transforms import Sample, to_model_input
from mlesam_ros.modalities import parse_modalities

DELIVER_CONDITIONS = ("cloud", "fog", "night", "rain", "sun")
DELIVER_SPLITS = ("train", "val", "test")
# modality -> (top-level folder, file-name token replacing "_rgb"). Depth is read from hha/,
# as DELIVER's reference loader does.
DELIVER_FOLDERS = {
    "rgb": ("img", "_rgb"),
    "depth": ("hha", "_depth"),
    "lidar": ("lidar", "_lidar"),
    "event": ("event", "_event"),
    "thermal": ("thermal", "_thermal"),  # not in DELIVER; written by `mlesam synth`
}
OPTIONAL_FOLDERS = ("thermal",)
"""Modalities read when their folder exists and otherwise reported absent (present False)."""
DELIVER_LABEL_FOLDER = ("semantic", "_semantic")
DELIVER_NUM_CLASSES = 25

MUSES_WEATHERS = ("clear", "fog", "rain", "snow")
MUSES_TIMES = ("day", "night")
MUSES_SPLITS = ("train", "val", "test")
# modality -> (folder, file suffix); LiDAR and events are the SDK's projections into the RGB
# camera, stored with the same relative paths as the frame camera images.
MUSES_FOLDERS = {
    "rgb": ("frame_camera", "_frame_camera.png"),
    "lidar": ("lidar", "_lidar.png"),
    "event": ("event_camera", "_event_camera.png"),
}
MUSES_LABEL_FOLDER = ("gt_semantic", "_gt_labelTrainIds.png")

Transform = Callable[[Sample, np.random.Generator], Sample]


def read_image(path: Path, what: str) -> np.ndarray:
    """Read a PNG as (H, W, 3) uint8 RGB (grey replicated); clear errors for bad files."""
    import cv2

    if not path.is_file():
        raise FileNotFoundError(f"{what}: missing file {path}")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{what}: cannot decode {path} (corrupt or not an image)")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image[:, :, ::-1])


def read_label_plane(path: Path) -> np.ndarray:
    """Read a label PNG's id plane: channel 0 (red) of colour files, else the single plane."""
    import cv2

    if not path.is_file():
        raise FileNotFoundError(f"labels: missing file {path}")
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise ValueError(f"labels: cannot decode {path} (corrupt or not an image)")
    return label[:, :, 2] if label.ndim == 3 else label  # OpenCV is BGR: red is index 2


def shift_deliver_labels(raw: np.ndarray) -> np.ndarray:
    """Map DELIVER's stored ids to train ids: 1..25 → 0..24; 0 and anything else → ignore."""
    raw = np.asarray(raw).astype(np.int64)
    valid = (raw >= 1) & (raw <= DELIVER_NUM_CLASSES)
    return np.where(valid, raw - 1, IGNORE_INDEX)


def clean_train_ids(raw: np.ndarray, num_classes: int) -> np.ndarray:
    """Keep ids 0..num_classes-1 and send everything else to ``IGNORE_INDEX``."""
    raw = np.asarray(raw).astype(np.int64)
    return np.where((raw >= 0) & (raw < num_classes), raw, IGNORE_INDEX)


def _choose(name: str, values: Sequence[str] | None, allowed: Sequence[str]) -> tuple[str, ...]:
    if values is None:
        return tuple(allowed)
    values = tuple(v.strip() for v in ([values] if isinstance(values, str) else values))
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        raise ValueError(f"{name}: unknown {unknown or 'empty'}; choose from {', '.join(allowed)}")
    return values


class _FolderDataset:
    """Shared machinery: a list of RGB files plus per-modality path mapping."""

    folders: dict[str, tuple[str, str]]
    label_folder: tuple[str, str]
    num_classes: int

    def __init__(
        self, root: str | Path, modalities: Sequence[str] | str, transform: Transform | None,
        seed: int,
    ) -> None:  # fmt: skip
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset root: {self.root} is not a directory")
        self.modalities = parse_modalities(modalities)
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0
        self.files: list[Path] = []
        self.available = [
            m for m in self.modalities
            if m in self.folders
            and (m not in OPTIONAL_FOLDERS or (self.root / self.folders[m][0]).is_dir())
        ]  # fmt: skip
        if "rgb" not in self.folders or not self.available:
            raise ValueError(
                f"modalities: none of {', '.join(self.modalities)} is recorded in this dataset; "
                f"it has {', '.join(self.folders)}"
            )
        for modality in (*self.available, "labels"):
            folder = self.label_folder[0] if modality == "labels" else self.folders[modality][0]
            if not (self.root / folder).is_dir():
                raise FileNotFoundError(
                    f"{modality}: folder {self.root / folder} is missing; drop '{modality}' from "
                    "modalities or unpack that part of the dataset"
                )

    def path_for(self, rgb_path: Path, modality: str) -> Path:
        """Map an RGB file to the file of ``modality`` (or ``labels``)."""
        raise NotImplementedError

    def condition_of(self, rgb_path: Path) -> str:
        """Return the condition name of a sample."""
        raise NotImplementedError

    def _check_counts(self) -> None:
        if not self.files:
            raise FileNotFoundError(f"no samples found under {self.root} for {self.describe()}")
        for modality in (*self.available, "labels"):
            if modality == "rgb":
                continue
            missing = [p for p in self.files if not self.path_for(p, modality).is_file()]
            if missing:
                raise ValueError(
                    f"{modality}: {len(self.files) - len(missing)} files for {len(self.files)} "
                    f"RGB images; first missing: {self.path_for(missing[0], modality)}"
                )

    def describe(self) -> str:
        """Describe the active filters (for error messages)."""
        return ""

    def __len__(self) -> int:
        """Return the number of samples."""
        return len(self.files)

    def read_labels(self, path: Path) -> np.ndarray:
        """Read and convert a label file to train ids with ignore."""
        return clean_train_ids(read_label_plane(path), self.num_classes)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Read sample ``index`` in the model's layout (after ``transform``)."""
        rgb_path = self.files[index]
        rgb = read_image(rgb_path, "rgb")
        images = np.zeros((len(self.modalities), *rgb.shape), dtype=np.uint8)
        present = np.zeros(len(self.modalities), dtype=bool)
        for slot, modality in enumerate(self.modalities):
            if modality not in self.available:
                continue
            image = rgb if modality == "rgb" else read_image(self.path_for(rgb_path, modality),
                                                             modality)  # fmt: skip
            if image.shape != rgb.shape:
                raise ValueError(
                    f"{modality}: {self.path_for(rgb_path, modality)} is {image.shape[:2]}, "
                    f"the RGB image is {rgb.shape[:2]}"
                )
            images[slot] = image
            present[slot] = True
        labels = self.read_labels(self.path_for(rgb_path, "labels"))
        if labels.shape != rgb.shape[:2]:
            raise ValueError(f"labels: {self.path_for(rgb_path, 'labels')} size differs from RGB")
        sample = {"images": images, "present": present, "labels": labels,
                  "modalities": tuple(self.modalities),
                  "condition": self.condition_of(rgb_path), "path": str(rgb_path)}  # fmt: skip
        if self.transform is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            sample = self.transform(sample, rng)
        return to_model_input(sample)


class DeliverDataset(_FolderDataset):
    """DELIVER: ``<modal folder>/<condition>/<split>/MAP_*/<id>_<modal>_<view>.png``.

    Modal folders are ``img`` (rgb), ``hha`` (depth), ``lidar``, ``event`` and ``semantic``.

    Labels come from channel 0 of the semantic PNG, shifted so 0 (unlabelled) becomes 255 and
    classes are 0..24 in ``mlesam_ros.data.classes.DELIVER_CLASSES`` order.
    """

    folders = DELIVER_FOLDERS
    label_folder = DELIVER_LABEL_FOLDER
    num_classes = DELIVER_NUM_CLASSES

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        modalities: Sequence[str] | str = ("rgb", "depth", "lidar", "event"),
        conditions: Sequence[str] | None = None,
        transform: Transform | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(root, modalities, transform, seed)
        (self.split,) = _choose("split", [split], DELIVER_SPLITS)
        self.conditions = _choose("conditions", conditions, DELIVER_CONDITIONS)
        image_root = self.root / "img"
        self.files = sorted(
            path
            for condition in self.conditions
            for path in (image_root / condition / self.split).glob("*/*_rgb*.png")
        )
        self._check_counts()

    def describe(self) -> str:
        """Describe the active filters."""
        return f"split '{self.split}', conditions {', '.join(self.conditions)}"

    def path_for(self, rgb_path: Path, modality: str) -> Path:
        """Map ``img/.../X_rgb_front.png`` to ``<folder>/.../X_<token>_front.png``."""
        folder, token = self.label_folder if modality == "labels" else self.folders[modality]
        relative = rgb_path.relative_to(self.root / "img")
        return self.root / folder / relative.parent / relative.name.replace("_rgb", token, 1)

    def condition_of(self, rgb_path: Path) -> str:
        """Return the weather folder name (cloud, fog, night, rain, sun)."""
        return rgb_path.relative_to(self.root / "img").parts[0]

    def read_labels(self, path: Path) -> np.ndarray:
        """Read channel 0 and shift ids so 0 becomes ignore."""
        return shift_deliver_labels(read_label_plane(path))


class MusesDataset(_FolderDataset):
    """MUSES: ``frame_camera/<split>/<weather>/<day|night>/<name>_frame_camera.png``.

    LiDAR and event images are the projections into the frame camera that MUSES' SDK writes,
    under ``lidar/`` and ``event_camera/`` with the same relative paths; labels are
    ``gt_semantic/.../<name>_gt_labelTrainIds.png`` with the 19 Cityscapes train ids.
    """

    folders = MUSES_FOLDERS
    label_folder = MUSES_LABEL_FOLDER
    num_classes = 19

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        modalities: Sequence[str] | str = ("rgb", "lidar", "event"),
        weathers: Sequence[str] | None = None,
        times_of_day: Sequence[str] | None = None,
        transform: Transform | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(root, modalities, transform, seed)
        (self.split,) = _choose("split", [split], MUSES_SPLITS)
        self.weathers = _choose("weathers", weathers, MUSES_WEATHERS)
        self.times_of_day = _choose("times_of_day", times_of_day, MUSES_TIMES)
        base = self.root / MUSES_FOLDERS["rgb"][0] / self.split
        self.files = sorted(
            path
            for weather in self.weathers
            for time in self.times_of_day
            for path in (base / weather / time).glob("*" + MUSES_FOLDERS["rgb"][1])
        )
        self._check_counts()

    def describe(self) -> str:
        """Describe the active filters."""
        return (f"split '{self.split}', weathers {', '.join(self.weathers)}, "
                f"times {', '.join(self.times_of_day)}")  # fmt: skip

    def path_for(self, rgb_path: Path, modality: str) -> Path:
        """Map a frame-camera file to the same relative path in another folder."""
        folder, suffix = self.label_folder if modality == "labels" else self.folders[modality]
        relative = rgb_path.relative_to(self.root / MUSES_FOLDERS["rgb"][0])
        name = relative.name[: -len(MUSES_FOLDERS["rgb"][1])] + suffix
        return self.root / folder / relative.parent / name

    def condition_of(self, rgb_path: Path) -> str:
        """Return ``<weather>_<time>`` such as ``fog_night``."""
        parts = rgb_path.relative_to(self.root / MUSES_FOLDERS["rgb"][0]).parts
        return f"{parts[1]}_{parts[2]}"
