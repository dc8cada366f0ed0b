"""Fill the LiDAR image's empty pixels from the nearest return, without background bleeding.

Beams leave gaps between their returns; ``dilation`` fills an empty pixel from the nearest
(smallest depth) return within that many pixels (a square window), so foreground never loses
pixels to the background behind it, and pixels with their own return keep it. Returns travel
as packed int64 keys, ``depth bits << 32 | r | g << 8 | b << 16`` (``EMPTY_KEY`` where none):
positive float32 depths sort like their bits, so the nearest return of a window is its
smallest key, channels and all.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlesam_ros.geometry.projection import EMPTY_KEY
from mlesam_ros.jit import inline, kernel, warm_up_with

# Below this, a packed key (empty: EMPTY_KEY, as in the z-buffer) holds a finite return.
EMPTY_FOUND = np.int64(0x7F800000) << 32


def dilation_targets(
    pixel_index: np.ndarray, depth: np.ndarray, height: int, width: int, radius: int
) -> tuple[np.ndarray, np.ndarray]:
    """Empty pixels within ``radius`` of a return, and which return fills each of them.

    ``pixel_index`` (``K``, ``row * width + col``) and ``depth`` (``K``) describe the returns.
    Each return proposes its (2r+1)^2 - 1 neighbours; per empty neighbour the nearest
    proposal wins through the same depth-key scatter-min as the z-buffer. Work scales with
    the returns, not the image. Returns ``(target_pixels, source_positions)``, positions
    indexing ``pixel_index``.
    """
    if radius <= 0 or pixel_index.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows, cols = np.divmod(pixel_index.astype(np.int64), width)
    span = np.arange(-radius, radius + 1)
    dy, dx = (grid.ravel() for grid in np.meshgrid(span, span, indexing="ij"))
    keep = (dy != 0) | (dx != 0)
    dy, dx = dy[keep, None], dx[keep, None]
    target_rows, target_cols = rows[None] + dy, cols[None] + dx
    source = np.broadcast_to(np.arange(pixel_index.size, dtype=np.int64), target_rows.shape)
    target = target_rows * width + target_cols
    occupied = np.zeros(height * width, dtype=bool)
    occupied[pixel_index] = True
    inside = (target_rows >= 0) & (target_rows < height) & (target_cols >= 0)
    inside &= target_cols < width
    inside[inside] = ~occupied[target[inside]]
    target, source = target[inside], source[inside]
    keys = (np.asarray(depth, np.float32)[source].view(np.int32).astype(np.int64) << 32) | source
    best = np.full(height * width, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, target, keys)
    wins = best[target] == keys
    return target[wins], source[wins]


def dilate_nearest(image: np.ndarray, depth: np.ndarray, radius: int) -> np.ndarray:
    """Fill empty pixels (``depth`` 0) from the nearest return within ``radius`` (a square).

    The dense form of :func:`dilation_targets`, for images where returns are not rare (see
    :func:`_nearest_within`); on an exact depth tie the first shift in row-major order wins.
    Pixels with a return keep it.
    """
    import cv2  # on first use: importing geometry (and msgs) stays free of OpenCV

    if radius <= 0:
        return image
    height, width = depth.shape
    filled = depth > 0
    # r, g, b in the low three bytes (RGBA's alpha byte masked off): one uint32 per pixel.
    colours = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2RGBA).view("<u4")
    keys = np.asarray(depth, np.float32).view(np.int32).astype(np.int64) << 32
    keys |= colours.reshape(height, width) & 0xFFFFFF
    return dilate_keys(np.where(filled, keys, EMPTY_KEY), radius)


def check_dilation(radius: int) -> None:
    """Refuse radii whose window ranks do not fit the 4 bits per axis of a packed key."""
    if 2 * radius + 1 > 16:
        raise ValueError(f"dilation radius {radius}: at most 7 (15 x 15 window)")


def dilate_keys(keys: np.ndarray, radius: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 image of packed ``keys``, empty pixels filled within ``radius``.

    ``_unpack(_nearest_within(keys, radius))``, by the compiled loop when numba is there.
    """
    check_dilation(radius)
    kernels = dilation_kernels()
    if kernels is None:
        return _unpack(_nearest_within(keys, radius))
    out = np.empty((*keys.shape, 3), dtype=np.uint8)
    one_pixel_blocks = np.zeros((1, 2), dtype=np.int64)
    kernels[0](np.ascontiguousarray(keys), radius, EMPTY_KEY, EMPTY_FOUND, 1, 1,
               one_pixel_blocks, out)  # fmt: skip
    return out


def _nearest_within(keys: np.ndarray, radius: int) -> np.ndarray:
    """Per pixel, its own key if it has a return, else the smallest key within ``radius``.

    Keys are ``depth bits << 32 | r | g << 8 | b << 16`` (``EMPTY_KEY`` where no return):
    positive float32 depths sort like their bits, so a square min filter, run separably as a
    row pass and a column pass of ``np.minimum`` over shifted views, finds the nearest return
    of every window together with its channels; each shift's rank rides in bits 24..31, so
    an exact depth tie goes to the first shift in row-major order. Returns ``0`` (no colour)
    where nothing is in reach. Written by hand because OpenCV's min filter (``cv2.erode``) has
    no 64-bit type to carry the channels along.
    """
    span = 2 * radius + 1
    height, width = keys.shape
    padded = np.full((height + 2 * radius, width + 2 * radius), EMPTY_KEY, dtype=np.int64)
    padded[radius : radius + height, radius : radius + width] = keys
    # Row pass over the padded rows (so the column pass can read its own border), then columns.
    rows = np.full((height + 2 * radius, width), EMPTY_KEY, dtype=np.int64)
    for dx in range(span):
        np.minimum(rows, padded[:, dx : dx + width] | (dx << 24), out=rows)
    best = np.full((height, width), EMPTY_KEY, dtype=np.int64)
    for dy in range(span):
        np.minimum(best, rows[dy : dy + height] | (dy << 28), out=best)
    # Whole-image selects (boolean indexing is several times slower here): own return, else
    # the window's nearest, else nothing.
    found = np.where(best < EMPTY_FOUND, best, 0)
    return np.where(keys != EMPTY_KEY, keys, found)


def _unpack(keys: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 r, g, b from the low three bytes of packed keys."""
    height, width = keys.shape
    rgba = (keys & 0xFFFFFF).astype("<u4").view(np.uint8).reshape(height, width, 4)
    return np.ascontiguousarray(rgba[..., :3])


# -- the compiled dilation --------------------------------------------------------------------
# Helpers the kernels call, compiled into each caller (see ``mlesam_ros.jit.inline``).


def _nearest_key(keys, row, col, radius, empty):
    """Return the pixel's own key, else the smallest (key | dy << 28 | dx << 24) in reach."""
    key = keys[row, col]
    if key != empty:
        return key
    height, width = keys.shape
    for dy in range(2 * radius + 1):
        r = row + dy - radius
        if r < 0 or r >= height:
            continue
        for dx in range(2 * radius + 1):
            c = col + dx - radius
            if c < 0 or c >= width:
                continue
            candidate = keys[r, c] | (dy << 28) | (dx << 24)
            if candidate < key:
                key = candidate
    return key


def _nothing_in_reach(keys, top, bottom, left, right, radius, empty):
    """Whether no return lies within ``radius`` of rows [top, bottom) x cols [left, right)."""
    height, width = keys.shape
    for r in range(max(top - radius, 0), min(bottom + radius, height)):
        for c in range(max(left - radius, 0), min(right + radius, width)):
            if keys[r, c] != empty:
                return False
    return True


def _write(out, orow, ocol, key):
    out[orow, ocol, 0] = key & 255
    out[orow, ocol, 1] = (key >> 8) & 255
    out[orow, ocol, 2] = (key >> 16) & 255


@kernel
def dilation_kernels(njit: Any) -> Any:
    """``(dilate_blocks, dilate_windows)``: :func:`dilate_keys`, evaluated where a shrink looks.

    The nearest-return dilation evaluated only at the pixels ``data.resample.resize_sparse``
    would pick from (whole-factor blocks in their rank order; any other size by its window
    scan), so the node dilates and shrinks in one pass. Blocks of 1 x 1 are the dilation alone.
    """
    inline(_nearest_key, _nothing_in_reach, _write)

    @njit
    def dilate_blocks(keys, radius, empty, reachable, fy, fx, order, out):
        """Per block: the first pixel in ``order`` with its own or a dilated return."""
        for orow in range(out.shape[0]):
            for ocol in range(out.shape[1]):
                top, left = orow * fy, ocol * fx
                found = 0
                # Skip blocks with no return anywhere in reach (the sky, the far left and
                # right of a LiDAR image): one scan instead of a window per pixel.
                if keys[top + order[0, 0], left + order[0, 1]] != empty or not _nothing_in_reach(
                        keys, top, top + fy, left, left + fx, radius, empty):  # fmt: skip
                    for k in range(order.shape[0]):
                        key = _nearest_key(keys, top + order[k, 0], left + order[k, 1], radius,
                                          empty)  # fmt: skip
                        if key < reachable:
                            found = key
                            break
                _write(out, orow, ocol, found)

    @njit
    def dilate_windows(keys, radius, empty, reachable, row_start, row_stop, col_start,
                       col_stop, out):  # fmt: skip
        """Per footprint: the pixel with a return nearest its centre.

        Float64 squared distance, the first in row-major order on a tie, as
        ``_resize_sparse_windows``.
        """
        for orow in range(out.shape[0]):
            top, bottom = row_start[orow], row_stop[orow]
            row_centre = (top + bottom) / 2.0
            for ocol in range(out.shape[1]):
                left, right = col_start[ocol], col_stop[ocol]
                col_centre = (left + right) / 2.0
                found = 0
                if not _nothing_in_reach(keys, top, bottom, left, right, radius, empty):
                    best = np.inf
                    for r in range(top, bottom):
                        row_offset = r + 0.5 - row_centre
                        for c in range(left, right):
                            col_offset = c + 0.5 - col_centre
                            distance = row_offset * row_offset + col_offset * col_offset
                            if not distance < best:  # cannot win: skip its dilation
                                continue
                            key = _nearest_key(keys, r, c, radius, empty)
                            if key < reachable:
                                best = distance
                                found = key
                _write(out, orow, ocol, found)

    return dilate_blocks, dilate_windows


@warm_up_with(lambda: dilation_kernels())
def _warm_up(kernels: Any) -> None:
    keys = np.zeros((2, 2), np.int64)
    out = np.empty((1, 1, 3), np.uint8)
    order = np.zeros((1, 2), np.int64)
    blocks, windows = kernels
    blocks(keys, 1, EMPTY_KEY, EMPTY_FOUND, 2, 2, order, out)
    bounds = np.zeros(1, np.int64), np.full(1, 2, np.int64)
    windows(keys, 1, EMPTY_KEY, EMPTY_FOUND, *bounds, *bounds, out)
