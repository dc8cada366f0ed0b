"""Class lists and colour palettes the project speaks: DELIVER (25) and Cityscapes (19).

DELIVER's order and palette follow its reference loader (``semseg/datasets/deliver.py`` in
the DELIVER/CMNeXt code), so a model trained on the synthetic world or on DELIVER outputs the
same ids. Ids are the *train ids* 0..24; the label PNGs store id + 1 with 0 meaning unlabelled,
which the loader shifts (see ``mlesam_ros.data.deliver``). Cityscapes train ids 0..18 are what
MUSES ships in its ``*_gt_labelTrainIds.png`` files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlesam_ros.text import quote

IGNORE_INDEX: int = 255
"""Label value excluded from losses and metrics (unlabelled / void pixels)."""

DELIVER_CLASSES: tuple[str, ...] = (
    "Building", "Fence", "Other", "Pedestrian", "Pole", "RoadLine", "Road", "SideWalk",
    "Vegetation", "Cars", "Wall", "TrafficSign", "Sky", "Ground", "Bridge", "RailTrack",
    "GroundRail", "TrafficLight", "Static", "Dynamic", "Water", "Terrain", "TwoWheeler",
    "Bus", "Truck",
)  # fmt: skip

DELIVER_PALETTE: np.ndarray = np.array(
    [
        [70, 70, 70], [100, 40, 40], [55, 90, 80], [220, 20, 60], [153, 153, 153],
        [157, 234, 50], [128, 64, 128], [244, 35, 232], [107, 142, 35], [0, 0, 142],
        [102, 102, 156], [220, 220, 0], [70, 130, 180], [81, 0, 81], [150, 100, 100],
        [230, 150, 140], [180, 165, 180], [250, 170, 30], [110, 190, 160], [170, 120, 50],
        [45, 60, 150], [145, 170, 100], [0, 0, 230], [0, 60, 100], [0, 0, 70],
    ],
    dtype=np.uint8,
)  # fmt: skip

CITYSCAPES_CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)  # fmt: skip

CITYSCAPES_PALETTE: np.ndarray = np.array(
    [
        [128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156], [190, 153, 153],
        [153, 153, 153], [250, 170, 30], [220, 220, 0], [107, 142, 35], [152, 251, 152],
        [70, 130, 180], [220, 20, 60], [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100],
        [0, 80, 100], [0, 0, 230], [119, 11, 32],
    ],
    dtype=np.uint8,
)  # fmt: skip

# Read-only: these arrays are shared module state; a caller painting into them would corrupt
# every later colourisation.
DELIVER_PALETTE.flags.writeable = False
CITYSCAPES_PALETTE.flags.writeable = False


@dataclass(frozen=True)
class ClassSet:
    """A label space: its name, class names in id order and an RGB palette (N, 3) uint8."""

    name: str
    names: tuple[str, ...]
    palette: np.ndarray

    @property
    def num_classes(self) -> int:
        """Number of valid ids (``IGNORE_INDEX`` excluded)."""
        return len(self.names)

    def index(self, class_name: str) -> int:
        """Id of ``class_name`` (case-insensitive); ``ValueError`` lists the valid names."""
        lowered = [n.lower() for n in self.names]
        try:
            return lowered.index(class_name.lower())
        except ValueError:
            raise ValueError(
                f"{self.name}: unknown class {quote(class_name)}; choose from "
                f"{', '.join(self.names)}"
            ) from None

    def colorize(self, labels: np.ndarray, ignore_color: tuple[int, int, int] = (0, 0, 0)):
        """Paint an id image (H, W) into an RGB image (H, W, 3) uint8; ignore/unknown ids black."""
        labels = np.asarray(labels)
        lut = np.zeros((256, 3), dtype=np.uint8)
        lut[:] = ignore_color
        lut[: self.num_classes] = self.palette
        return lut[np.clip(labels, 0, 255).astype(np.uint8)]


DELIVER = ClassSet("deliver", DELIVER_CLASSES, DELIVER_PALETTE)
CITYSCAPES = ClassSet("cityscapes", CITYSCAPES_CLASSES, CITYSCAPES_PALETTE)

CLASS_SETS: dict[str, ClassSet] = {"deliver": DELIVER, "cityscapes": CITYSCAPES}


def get_class_set(name: str) -> ClassSet:
    """Look up a label space by name (``deliver`` or ``cityscapes``)."""
    try:
        return CLASS_SETS[name.lower()]
    except KeyError:
        raise ValueError(
            f"class set: unknown {quote(name)}; choose from {', '.join(CLASS_SETS)}"
        ) from None
