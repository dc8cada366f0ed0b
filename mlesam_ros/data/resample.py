"""The one resampler: every image the model sees is resized here (training, evaluation, node).

How an image may be resampled depends on what its pixels mean (:func:`resample_mode`):

- dense images (RGB, thermal): an area average when shrinking, bilinear when enlarging;
- point-like modalities (LiDAR returns, event pixels, 0 = no measurement): each output pixel
  takes one real measurement, the valid pixel nearest its footprint's centre
  (:func:`resize_sparse`), so no depth or polarity is invented;
- depth images with holes: the average of the valid pixels only (:func:`resize_with_holes`);
- label ids: nearest neighbour at pixel centres (:func:`nearest_resize`), so ids never blend.

:func:`resize_image` picks the right one by modality name. The node shrinks camera images to
the model input with :func:`area_resize` (OpenCV's exact 2x2 halvings first, then one area
step) and grows labels back with :func:`nearest_upsample` (repeat counts, the same map as
:func:`nearest_resize`). Its compiled encode-and-shrink loops (``pipeline/depth.py``,
``lidar.py``) keep this module's functions as their references.
"""

from __future__ import annotations

import cv2
import numpy as np

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


def resize_indices(source: int, target: int) -> np.ndarray:
    """Nearest source index of each target pixel, sampling pixel centres (as training does)."""
    return np.minimum(((np.arange(target) + 0.5) * source / target).astype(np.int64), source - 1)


def repeat_counts(source: int, target: int) -> np.ndarray:
    """How often each source pixel repeats in :func:`resize_indices` (``np.repeat`` form)."""
    return np.bincount(resize_indices(source, target), minlength=source)


def nearest_upsample(image: np.ndarray, counts: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Nearest-neighbour resize by repeating columns, then whole rows (``counts`` per axis).

    Equal to indexing with :func:`resize_indices` (the indices are non-decreasing, so per-pixel
    repeat counts give the same map) but cheaper: columns are gathered on the few model rows,
    then the camera-size image is built from whole-row copies. ``cv2.INTER_NEAREST`` would
    sample pixel corners, not centres, and disagree with training's label resize.
    """
    columns = np.repeat(np.arange(counts[1].size), counts[1])
    return np.repeat(np.take(image, columns, axis=1), counts[0], axis=0)


def area_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """:func:`resize_image` of a dense image, faster for large shrinks (the node's camera images).

    Large shrinks first halve with exact 2x2 box averages (OpenCV's fast path; one direct
    area resize of a 1080p image is ~4x slower). That equals one area resize when the
    remaining factor is whole; otherwise the last step's footprints snap to 2x2 blocks: on
    synthetic 640x480, 1280x720 and 1920x1080 frames the model input differs from a direct
    area resize by 0.2-0.6 levels on average, by more than 2 levels on 0.5-5.6 % of values.
    """
    out_h, out_w = size
    height, width = image.shape[:2]
    if (height, width) == (out_h, out_w):
        return image
    while height // 2 >= 2 * out_h and width // 2 >= 2 * out_w:
        height, width = height // 2, width // 2
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    shrink = out_h < height and out_w < width
    mode = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (out_w, out_h), interpolation=mode)


def nearest_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of any array (label ids) to ``size`` (H, W) at pixel centres.

    cv2 has no int64 nearest resize and ``cv2.INTER_NEAREST`` samples pixel corners, not
    centres; index arithmetic does it exactly.
    """
    if tuple(size) == image.shape[:2]:
        return image
    rows = resize_indices(image.shape[0], size[0])
    cols = resize_indices(image.shape[1], size[1])
    return np.take(np.take(image, rows, axis=0), cols, axis=1)


def whole_shrink(size: tuple[int, int], out: tuple[int, int]) -> tuple[int, int] | None:
    """``(fy, fx)`` when ``size`` is a whole multiple of ``out`` (1 = same), else None."""
    (height, width), (out_h, out_w) = size, out
    if height % out_h or width % out_w or height < out_h or width < out_w:
        return None
    return height // out_h, width // out_w
