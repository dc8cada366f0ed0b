"""Synthetic frames as model samples: encode every sensor into the RGB camera's pixels.

``frame_to_images`` is the same path a robot takes (depth registered to RGB, thermal warped
into RGB with the depth, LiDAR projected with the extrinsic), so a model trained on these
samples sees what the live pipeline gives it. ``SyntheticDataset`` renders frames on demand.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from mlesam_ros.data.encode import encode_depth, encode_lidar, encode_rgb, encode_thermal
from mlesam_ros.data.synth import SyntheticDrive, SyntheticFrame, default_rig
from mlesam_ros.data.synth.render import CONDITIONS
from mlesam_ros.data.transforms import Sample, to_model_input
from mlesam_ros.modalities import MODALITIES as MODALITY_SLOTS
from mlesam_ros.modalities import parse_modalities


def registered_thermal(frame: SyntheticFrame) -> np.ndarray | None:
    """Warp the thermal image into the RGB camera (float32 counts; 0 outside its view)."""
    if frame.thermal is None:
        return None
    from mlesam_ros.geometry.registration import register_image

    rig = frame.rig
    depth = None
    if frame.depth is not None:
        depth = np.where(frame.depth > 0, frame.depth, np.nan)
    return register_image(
        frame.thermal.astype(np.float32), rig.thermal.camera, rig.rgb.camera,
        rig.transform("rgb", "thermal"), rgb_depth_m=depth,
    )  # fmt: skip


def frame_to_images(
    frame: SyntheticFrame, modalities: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Encode a frame's sensors as (M, H, W, 3) uint8 images in the RGB camera + presence.

    A sensor whose message is missing (or an ``event`` modality, which the synthetic robot
    lacks) gives zeros and ``present`` False.
    """
    modalities = parse_modalities(modalities)
    height, width = frame.labels.shape
    images = np.zeros((len(modalities), height, width, 3), dtype=np.uint8)
    present = np.zeros(len(modalities), dtype=bool)
    for slot, modality in enumerate(modalities):
        image = None
        if modality == "rgb" and frame.rgb is not None:
            image = encode_rgb(frame.rgb)
        elif modality == "depth" and frame.depth is not None:
            image = encode_depth(frame.depth)
        elif modality == "thermal" and frame.thermal is not None:
            warped = registered_thermal(frame)
            seen = warped > 0
            low, high = np.percentile(warped[seen], (1, 99)) if seen.any() else (0.0, 1.0)
            image = encode_thermal(warped, (low, high))
            image[~seen] = 0
        elif modality == "lidar" and frame.lidar is not None:
            xyz = np.stack([frame.lidar["x"], frame.lidar["y"], frame.lidar["z"]], axis=1)
            image = encode_lidar(xyz, frame.lidar["intensity"], frame.camera_from_lidar,
                                 frame.rig.rgb.camera)  # fmt: skip
        if image is not None:
            images[slot] = image
            present[slot] = True
    return images, present


def corrupt_frame(
    frame: SyntheticFrame,
    corruption: Any,
    rng: np.random.Generator,
    previous: SyntheticFrame | None = None,
) -> SyntheticFrame:
    """Return a copy of ``frame`` whose ``corruption.modality`` sensor lies.

    The sensor's own data is corrupted before any encoding, as a robot would deliver it; a
    sensor whose message is missing stays missing. ``previous`` is an earlier frame of the
    same drive (``frozen``). LiDAR labels follow the points they belong to where points are
    removed, and become unknown (255) where points move.
    """
    from dataclasses import replace

    from mlesam_ros.data.corruptions import corrupt_sensor

    sensor = corruption.modality
    data = getattr(frame, sensor, None)
    if data is None:
        return frame
    earlier = getattr(previous, sensor, None) if previous is not None else None
    if sensor == "lidar":
        return _corrupt_lidar_frame(frame, corruption, rng, earlier, previous)
    return replace(frame, **{sensor: corrupt_sensor(sensor, data, corruption, rng, earlier)})


def _corrupt_lidar_frame(frame, corruption, rng, earlier, previous):
    from dataclasses import replace

    from mlesam_ros.data.corruptions import corrupt_sensor

    points = frame.lidar
    if corruption.kind in ("dropout", "occlusion"):
        # Tag each point with its index so the labels of the survivors can follow them.
        tagged = np.zeros(len(points), dtype=[*points.dtype.descr, ("index", "<i8")])
        for name in points.dtype.names:
            tagged[name] = points[name]
        tagged["index"] = np.arange(len(points))
        kept = corrupt_sensor("lidar", tagged, corruption, rng)
        labels = None if frame.lidar_labels is None else frame.lidar_labels[kept["index"]]
        return replace(frame, lidar=kept[list(points.dtype.names)].copy(), lidar_labels=labels)
    corrupted = corrupt_sensor("lidar", points, corruption, rng, earlier)
    if corruption.kind == "frozen" and earlier is not None:
        return replace(frame, lidar=corrupted, lidar_labels=previous.lidar_labels)
    unknown = None if frame.lidar_labels is None else np.full(len(corrupted), 255, np.uint8)
    return replace(frame, lidar=corrupted, lidar_labels=unknown)


def corrupt_stream(
    frames: Iterable[SyntheticFrame], schedule: Sequence[Any], seed: int = 0
) -> Iterator[SyntheticFrame]:
    """Apply scheduled corruptions (``data.corruptions.ScheduledCorruption``) to a recording.

    Frame ``i`` of the stream gets every corruption active at ``i``; a ``frozen`` sensor
    repeats its data from the frame before the corruption started.
    """
    stuck: dict[int, SyntheticFrame] = {}
    previous: SyntheticFrame | None = None
    for index, frame in enumerate(frames):
        clean = frame
        for number, scheduled in enumerate(schedule):
            if not scheduled.active(index):
                continue
            rng = np.random.default_rng([seed, index, number, 0xC2])
            held = None
            if scheduled.corruption.kind == "frozen":
                held = stuck.setdefault(number, previous or clean)
            frame = corrupt_frame(frame, scheduled.corruption, rng, held)
        previous = clean
        yield frame


class SyntheticDataset:
    """Map-style dataset of synthetic samples in the model's layout (see ``loaders``).

    Sample ``i`` is frame ``i % frames_per_drive`` of drive ``i // frames_per_drive`` (own
    street seed), under ``conditions[drive % len(conditions)]``. Frames render at
    ``size`` (H, W); ``transform`` (``mlesam_ros.data.transforms``) then augments.
    """

    def __init__(
        self,
        length: int,
        modalities: Sequence[str] | str = ("rgb", "depth", "thermal", "lidar"),
        size: tuple[int, int] = (240, 320),
        conditions: Sequence[str] = tuple(CONDITIONS),
        seed: int = 0,
        frames_per_drive: int = 20,
        failure_rate: float = 0.0,
        transform: Any = None,
        lidar_beams: int = 64,
        corruptions: Sequence[Any] = (),
    ) -> None:
        if length <= 0:
            raise ValueError(f"length: must be > 0, got {length}")
        if frames_per_drive <= 0:
            raise ValueError(f"frames_per_drive: must be > 0, got {frames_per_drive}")
        unknown = [c for c in conditions if c not in CONDITIONS]
        if unknown or not conditions:
            raise ValueError(
                f"conditions: unknown {unknown or 'empty'}; choose from {', '.join(CONDITIONS)}"
            )
        self.length = int(length)
        self.modalities = parse_modalities(modalities)
        self.size = (int(size[0]), int(size[1]))
        self.conditions = tuple(conditions)
        self.seed = int(seed)
        self.frames_per_drive = int(frames_per_drive)
        self.failure_rate = float(failure_rate)
        self.transform = transform
        self.epoch = 0
        self.rig = default_rig(width=self.size[1], height=self.size[0], lidar_beams=lidar_beams)
        # ``data.corruptions.Corruption``s applied to every frame (``mlesam eval --corrupt``).
        self.corruptions = tuple(corruptions)
        # Keep rendered frames in memory: evaluations that score the same frames many times
        # (``mlesam eval --robustness``) render each once (~1.5 MB a frame at 96x128).
        self.keep_frames = False
        self._frames: dict[int, SyntheticFrame] = {}
        self._drives: dict[int, SyntheticDrive] = {}

    def __len__(self) -> int:
        """Return the number of samples."""
        return self.length

    def drive(self, number: int) -> SyntheticDrive:
        """Return (cached) drive ``number``."""
        if number not in self._drives:
            if len(self._drives) > 8:
                self._drives.clear()
            self._drives[number] = SyntheticDrive(
                seed=self.seed * 100_003 + number,
                condition=self.conditions[number % len(self.conditions)],
                rig=self.rig,
                failure_rate=self.failure_rate,
            )
        return self._drives[number]

    def frame(self, index: int) -> SyntheticFrame:
        """Render the frame behind sample ``index`` (kept when ``keep_frames`` is set)."""
        if not 0 <= index < self.length:
            raise IndexError(f"sample {index} out of range 0..{self.length - 1}")
        if index in self._frames:
            return self._frames[index]
        frame = self.drive(index // self.frames_per_drive).frame(index % self.frames_per_drive)
        if self.keep_frames:
            self._frames[index] = frame
        return frame

    def corrupted_frame(self, index: int) -> SyntheticFrame:
        """Frame ``index`` with ``corruptions`` applied (each from its own random stream)."""
        from mlesam_ros.data.corruptions import FROZEN_LAG, KINDS

        frame = self.frame(index)
        for corruption in self.corruptions:
            previous = None
            if corruption.kind == "frozen":
                lag = FROZEN_LAG[corruption.severity - 1]
                offset = index % self.frames_per_drive
                earlier = index - lag if offset >= lag else index + lag
                if 0 <= earlier < self.length and earlier // self.frames_per_drive == (
                    index // self.frames_per_drive
                ):
                    previous = self.frame(earlier)
            stream = [self.seed, index, 0xC0, MODALITY_SLOTS.index(corruption.modality),
                      KINDS.index(corruption.kind)]  # fmt: skip
            frame = corrupt_frame(frame, corruption, np.random.default_rng(stream), previous)
        return frame

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Render, encode and transform sample ``index``."""
        frame = self.corrupted_frame(index) if self.corruptions else self.frame(index)
        images, present = frame_to_images(frame, self.modalities)
        sample: Sample = {
            "images": images, "present": present, "labels": frame.labels.astype(np.int64),
            "modalities": tuple(self.modalities), "condition": frame.condition,
            "path": f"synthetic://{self.seed}/{index}",
        }  # fmt: skip
        if self.transform is not None:
            sample = self.transform(sample, np.random.default_rng([self.seed, self.epoch, index]))
        return to_model_input(sample)
