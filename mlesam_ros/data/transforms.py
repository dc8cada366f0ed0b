"""Joint transforms for multi-modal samples: every modality and the labels move together.

A sample is a dict with ``images`` (M, H, W, 3) uint8 (one image per modality, zeros where a
modality is absent), ``present`` (M,) bool, ``labels`` (H, W) integer ids and optionally
``modalities`` (the M names). Geometric transforms apply the same resize/crop/flip to all of
them; resizing goes through the one resampler (:mod:`mlesam_ros.data.resample`), each image
the way its modality needs and labels nearest-neighbour so ids never blend.
:func:`to_model_input` then gives the model's ``(M, 3, H, W)`` float32 in 0..255.
Normalisation lives inside the model; :func:`normalize` is for consumers that need it outside
(e.g. a raw engine).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mlesam_ros.data.classes import IGNORE_INDEX
from mlesam_ros.data.resample import nearest_resize, resize_image
from mlesam_ros.modalities import PIXEL_MEAN, PIXEL_STD

Sample = dict[str, Any]


def _check(sample: Sample) -> tuple[int, int]:
    images, labels = sample["images"], sample.get("labels")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images: expected (M, H, W, 3), got {images.shape}")
    if labels is not None and labels.shape != images.shape[1:3]:
        raise ValueError(f"labels: shape {labels.shape} differs from images {images.shape[1:3]}")
    return images.shape[1], images.shape[2]


def resize(
    sample: Sample, size: tuple[int, int], modalities: Sequence[str] | None = None
) -> Sample:
    """Resize to ``size`` (H, W); labels nearest, each image by its modality (``resize_image``).

    The images' modality names come from ``modalities`` or else ``sample["modalities"]``:
    resizing a LiDAR or depth image as a dense one would invent measurements, so without
    names this refuses rather than guess (name a dense image ``None`` to opt in).
    """
    height, width = _check(sample)
    out_h, out_w = int(size[0]), int(size[1])
    if (out_h, out_w) == (height, width):
        return sample
    names = modalities if modalities is not None else sample.get("modalities")
    if names is None:
        raise ValueError(
            "modalities: resize needs the images' modality names (pass modalities=... or "
            "set sample['modalities']) so LiDAR and depth are resized without blending"
        )
    names = list(names)
    if len(names) != len(sample["images"]):
        raise ValueError(
            f"modalities: {len(names)} names for {len(sample['images'])} images"
        )
    images = np.stack([resize_image(image, (out_h, out_w), name)
                       for image, name in zip(sample["images"], names, strict=True)])  # fmt: skip
    result = dict(sample, images=images)
    if sample.get("labels") is not None:
        result["labels"] = nearest_resize(sample["labels"], (out_h, out_w))
    return result


def crop(sample: Sample, top: int, left: int, height: int, width: int) -> Sample:
    """Crop all modalities and labels to the same window, padding (0 / ignore) if needed."""
    full_h, full_w = _check(sample)
    pad_h, pad_w = max(0, top + height - full_h), max(0, left + width - full_w)
    images, labels = sample["images"], sample.get("labels")
    if pad_h or pad_w:
        images = np.pad(images, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
        if labels is not None:
            labels = np.pad(labels, ((0, pad_h), (0, pad_w)), constant_values=IGNORE_INDEX)
    window = (slice(top, top + height), slice(left, left + width))
    result = dict(sample, images=images[:, window[0], window[1]])
    if labels is not None:
        result["labels"] = labels[window]
    return result


def hflip(sample: Sample) -> Sample:
    """Mirror all modalities and labels left-right."""
    _check(sample)
    result = dict(sample, images=sample["images"][:, :, ::-1])
    if sample.get("labels") is not None:
        result["labels"] = sample["labels"][:, ::-1]
    return result


class Resize:
    """Resize every sample to a fixed (H, W) (``modalities``: see ``resize``)."""

    def __init__(self, size: tuple[int, int], modalities: Sequence[str] | None = None) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.modalities = modalities

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        """Apply the resize (``rng`` unused; kept for a uniform transform signature)."""
        return resize(sample, self.size, self.modalities)


class RandomScale:
    """Resize by a random factor in ``scale_range`` (same for all modalities)."""

    def __init__(
        self,
        scale_range: tuple[float, float] = (0.75, 1.5),
        modalities: Sequence[str] | None = None,
    ) -> None:
        self.scale_range = scale_range
        self.modalities = modalities

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        """Draw a scale and resize."""
        height, width = _check(sample)
        scale = rng.uniform(*self.scale_range)
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        return resize(sample, size, self.modalities)


class RandomCrop:
    """Crop a random (H, W) window; smaller inputs are padded with zeros / ignore."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = (int(size[0]), int(size[1]))

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        """Pick the window and crop."""
        height, width = _check(sample)
        top = int(rng.integers(0, max(0, height - self.size[0]) + 1))
        left = int(rng.integers(0, max(0, width - self.size[1]) + 1))
        return crop(sample, top, left, *self.size)


class RandomHorizontalFlip:
    """Mirror with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        """Flip or pass through."""
        return hflip(sample) if rng.random() < self.p else sample


class Compose:
    """Apply transforms in order with one random generator."""

    def __init__(self, transforms: Sequence[Callable[[Sample, np.random.Generator], Sample]]):
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        """Run every transform."""
        for transform in self.transforms:
            sample = transform(sample, rng)
        return sample


def train_transforms(
    size: tuple[int, int], scale_range=(0.75, 1.5), modalities: Sequence[str] | None = None
) -> Compose:
    """Return the usual training augmentation: random scale, crop to ``size``, flip.

    ``modalities`` names the images (see ``resize``), so LiDAR and depth resize without blending.
    """
    return Compose([RandomScale(scale_range, modalities), RandomCrop(size),
                    RandomHorizontalFlip()])  # fmt: skip


def eval_transforms(size: tuple[int, int], modalities: Sequence[str] | None = None) -> Compose:
    """Return evaluation preprocessing: a plain resize to ``size`` (by modality, see above)."""
    return Compose([Resize(size, modalities)])


def to_model_input(sample: Sample) -> Sample:
    """Convert to the model's layout: ``images`` (M, 3, H, W) float32 0..255, int64 labels.

    Absent modalities are zeroed so stale data can never leak through a False ``present``.
    """
    _check(sample)
    present = np.asarray(sample["present"], dtype=bool)
    images = np.ascontiguousarray(sample["images"].transpose(0, 3, 1, 2), dtype=np.float32)
    images[~present] = 0.0
    result = dict(sample, images=images, present=present)
    if sample.get("labels") is not None:
        result["labels"] = np.ascontiguousarray(sample["labels"], dtype=np.int64)
    return result


def normalize(images: np.ndarray, modalities: Sequence[str]) -> np.ndarray:
    """Normalise (M, 3, H, W) 0..255 images with each modality's ``PIXEL_MEAN``/``PIXEL_STD``."""
    if images.shape[0] != len(modalities):
        raise ValueError(f"images: {images.shape[0]} modalities but {len(modalities)} names")
    mean = np.array([PIXEL_MEAN[m] for m in modalities], dtype=np.float32)[:, :, None, None]
    std = np.array([PIXEL_STD[m] for m in modalities], dtype=np.float32)[:, :, None, None]
    return (images.astype(np.float32) - mean) / std
