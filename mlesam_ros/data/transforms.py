"""Joint transforms for multi-modal samples: every modality and the labels move together.

A sample is a dict with ``images`` (M, H, W, 3) uint8 (one image per modality, zeros where a
modality is absent), ``present`` (M,) bool and ``labels`` (H, W) integer ids. Geometric
transforms apply the same resize/crop/flip to all of them (labels with nearest-neighbour so
ids never blend); :func:`to_model_input` then gives the model's ``(M, 3, H, W)`` float32 in
0..255. Normalisation lives inside the model; :func:`normalize` is for consumers that need it
outside (e.g. a raw engine).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mlesam_ros.data.classes import IGNORE_INDEX
from mlesam_ros.modalities import PIXEL_MEAN, PIXEL_STD

Sample = dict[str, Any]


def _check(sample: Sample) -> tuple[int, int]:
    images, labels = sample["images"], sample.get("labels")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images: expected (M, H, W, 3), got {images.shape}")
    if labels is not None and labels.shape != images.shape[1:3]:
        raise ValueError(f"labels: shape {labels.shape} differs from images {images.shape[1:3]}")
    return images.shape[1], images.shape[2]


# How each modality may be resampled. Point-like modalities (LiDAR returns, event pixels) take
# one real measurement per output pixel: blending them with empty (0) pixels would invent
# depths and polarities that were never measured. Depth images with holes average only their
# valid pixels. Dense images (RGB, thermal) keep area/bilinear interpolation.
SPARSE_MODALITIES: frozenset[str] = frozenset({"lidar", "event"})
HOLED_MODALITIES: frozenset[str] = frozenset({"depth"})


def resample_mode(modality: str | None) -> str:
    """``"sparse"``, ``"holes"`` or ``"dense"``: how ``resize`` treats this modality."""
    if modality in SPARSE_MODALITIES:
        return "sparse"
    if modality in HOLED_MODALITIES:
        return "holes"
    return "dense"


def window_bounds(out: int, full: int) -> tuple[np.ndarray, np.ndarray]:
    """Source index range [start, stop) covered by each output pixel (at least one pixel)."""
    edges = np.arange(out + 1) * full / out
    start = np.minimum(np.floor(edges[:-1]).astype(np.int64), full - 1)
    stop = np.maximum(np.ceil(edges[1:]).astype(np.int64), start + 1)
    return start, np.minimum(stop, full)


def valid_pixels(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: pixels with any non-zero channel (a measurement, not a hole).

    One comparison per channel plane: ``np.any(axis=-1)`` over a short last axis is several
    times slower.
    """
    pixels = image.reshape(image.shape[0], image.shape[1], -1)
    valid = pixels[:, :, 0] != 0
    for channel in range(1, pixels.shape[2]):
        valid |= pixels[:, :, channel] != 0
    return valid


def resize_sparse(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, C) image whose 0 pixels mean "no measurement", inventing no values.

    Each output pixel takes the valid (non-zero) input pixel of its footprint that lies
    nearest the footprint's centre (ties: the first in row-major order), all channels from
    that one pixel, or 0 when the footprint holds none. Enlarging is plain nearest neighbour.
    Written by hand because cv2 and torch offer no resampling that ignores invalid pixels. It
    scans the few candidate offsets of a footprint (4 for a 2x shrink) over the whole output
    at once, so the node can afford it per frame.
    """
    height, width = image.shape[:2]
    out_h, out_w = int(size[0]), int(size[1])
    if height % out_h == 0 and width % out_w == 0 and height > out_h and width > out_w:
        return _shrink_sparse_by_blocks(image, height // out_h, width // out_w)
    return _resize_sparse_windows(image, (out_h, out_w))


def _resize_sparse_windows(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """:func:`resize_sparse` for any sizes: scan candidate offsets over all footprints.

    Only the choice (which source pixel) is scanned; the pixels themselves, all channels at
    once, are gathered once at the end.
    """
    height, width = image.shape[:2]
    out_h, out_w = size
    row_start, row_stop = window_bounds(out_h, height)
    col_start, col_stop = window_bounds(out_w, width)
    k_rows = int((row_stop - row_start).max())
    k_cols = int((col_stop - col_start).max())
    # Squared distance of each candidate from its footprint centre (in source pixels).
    row_centre = (row_start + row_stop) / 2.0
    col_centre = (col_start + col_stop) / 2.0
    valid = valid_pixels(image)
    best = np.full((out_h, out_w), np.inf)
    source = np.zeros((out_h, out_w), dtype=np.int64)
    for i in range(k_rows):
        rows = row_start + i
        row_inside = rows < row_stop
        rows = np.minimum(rows, height - 1)
        row_dist = np.where(row_inside, (rows + 0.5 - row_centre) ** 2, np.inf)
        for j in range(k_cols):
            cols = col_start + j
            col_inside = cols < col_stop
            cols = np.minimum(cols, width - 1)
            col_dist = np.where(col_inside, (cols + 0.5 - col_centre) ** 2, np.inf)
            distance = row_dist[:, None] + col_dist[None, :]
            distance = np.where(valid[rows[:, None], cols[None, :]], distance, np.inf)
            better = distance < best  # strict: an earlier candidate wins a tie
            np.copyto(best, distance, where=better)
            np.copyto(source, rows[:, None] * width + cols[None, :], where=better)
    # A footprint with no valid pixel takes any invalid pixel of the image: all channels 0.
    if not valid.all():
        source[np.isinf(best)] = np.argmin(valid)
    picked = np.take(image.reshape(height * width, -1), source, axis=0)
    return picked.reshape(out_h, out_w, *image.shape[2:])


def block_rank(fy: int, fx: int) -> list[int]:
    """Offsets ``k = dy * fx + dx`` of an ``fy`` x ``fx`` block in :func:`resize_sparse`'s order.

    Nearest the block centre first, ties in row-major order: the first valid one is chosen.
    """
    centre_y, centre_x = fy / 2.0, fx / 2.0
    return sorted(range(fy * fx), key=lambda k: (
        (k // fx + 0.5 - centre_y) ** 2 + (k % fx + 0.5 - centre_x) ** 2, k))  # fmt: skip


def _shrink_sparse_by_blocks(image: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """:func:`resize_sparse` for whole-number shrink factors, in a few strided passes.

    Every footprint is an ``fy`` x ``fx`` block, so the candidates' order (distance from the
    block centre, then row-major) is the same for all of them: mark each block's candidate
    where it is valid, lowest priority first, so the best valid one is marked last; then
    gather every chosen pixel (all channels) at once.
    """
    full_h, full_w = image.shape[:2]
    height, width = full_h // fy, full_w // fx
    pixels = image.reshape(full_h, full_w, -1)
    valid = valid_pixels(image)
    offsets = [(dy, dx) for dy in range(fy) for dx in range(fx)]
    rank = block_rank(fy, fx)
    choice = np.full((height, width), -1, dtype=np.int32)
    for k in reversed(rank):
        dy, dx = offsets[k]
        np.copyto(choice, k, where=valid[dy::fy, dx::fx])
    step = np.array([dy * full_w + dx for dy, dx in offsets] + [0], dtype=np.int64)
    source = np.arange(height)[:, None] * (fy * full_w) + np.arange(width)[None, :] * fx
    source += step[choice]
    # A block with no valid pixel takes any invalid pixel of the image: all its channels are 0.
    source[choice < 0] = np.argmin(valid)
    picked = np.take(pixels.reshape(full_h * full_w, -1), source, axis=0)
    return picked.reshape(height, width, *image.shape[2:])


def resize_with_holes(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, C) image with 0 = hole: a masked average of its valid pixels.

    Holes never pull values towards 0; an output pixel is a hole only where its footprint
    holds no valid pixel (shrinking) or its nearest source pixel is a hole (enlarging).
    """
    import cv2

    height, width = image.shape[:2]
    out_h, out_w = int(size[0]), int(size[1])
    shrink = out_h < height and out_w < width
    mode = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    valid = valid_pixels(image).astype(np.float32)
    # A hole is 0 in every channel, so the plain sum over a footprint is the sum of its valid
    # pixels.
    summed = cv2.resize(image.astype(np.float32), (out_w, out_h), interpolation=mode)
    weight = cv2.resize(valid, (out_w, out_h), interpolation=mode)
    if summed.ndim == 2 and image.ndim == 3:
        summed = summed[:, :, None]
    if shrink:
        keep = weight > 1e-6
    else:
        keep = resize_sparse(valid[:, :, None], (out_h, out_w))[:, :, 0] > 0
    weight = weight.reshape(out_h, out_w, *([1] * (image.ndim - 2)))
    with np.errstate(divide="ignore", invalid="ignore"):
        averaged = summed / np.maximum(weight, 1e-6)
    keep = keep.reshape(out_h, out_w, *([1] * (image.ndim - 2)))
    result = np.where(keep, np.clip(np.rint(averaged), 1, 255), 0)
    return result.astype(image.dtype)


def resize_image(image: np.ndarray, size: tuple[int, int], modality: str | None = None):
    """Resize one (H, W, C) modality image to ``size`` (H, W) the way its modality needs."""
    import cv2

    height, width = image.shape[:2]
    out_h, out_w = int(size[0]), int(size[1])
    if (out_h, out_w) == (height, width):
        return image
    mode = resample_mode(modality)
    if mode == "sparse":
        return resize_sparse(image, (out_h, out_w))
    if mode == "holes":
        return resize_with_holes(image, (out_h, out_w))
    shrink = out_h < height and out_w < width
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (out_w, out_h), interpolation=interpolation)


def resize(
    sample: Sample, size: tuple[int, int], modalities: Sequence[str] | None = None
) -> Sample:
    """Resize to ``size`` (H, W); labels nearest, images by modality (``resize_image``).

    ``modalities`` names the images' modalities in order; without it every image is treated
    as dense (bilinear, area when shrinking).
    """
    height, width = _check(sample)
    out_h, out_w = int(size[0]), int(size[1])
    if (out_h, out_w) == (height, width):
        return sample
    names = list(modalities) if modalities is not None else [None] * len(sample["images"])
    if len(names) != len(sample["images"]):
        raise ValueError(
            f"modalities: {len(names)} names for {len(sample['images'])} images"
        )
    images = np.stack([resize_image(image, (out_h, out_w), name)
                       for image, name in zip(sample["images"], names, strict=True)])  # fmt: skip
    result = dict(sample, images=images)
    if sample.get("labels") is not None:
        labels = sample["labels"]
        # cv2 has no int64 nearest resize; index arithmetic does it exactly (pixel centres).
        rows = np.minimum(((np.arange(out_h) + 0.5) * height / out_h).astype(np.int64), height - 1)
        cols = np.minimum(((np.arange(out_w) + 0.5) * width / out_w).astype(np.int64), width - 1)
        result["labels"] = labels[rows[:, None], cols[None, :]]
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

    Give ``modalities`` so sparse ones (LiDAR, event, depth holes) resize without blending.
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
