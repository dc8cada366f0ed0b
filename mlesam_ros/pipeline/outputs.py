"""Labels → what the node publishes: camera-size labels, confidence, overlay, painted points.

The model answers on its own small grid; only the published images need the camera's size.
Everything here works on the model grid as long as it can and grows to camera size last:
ids by repeating pixels (nearest neighbour at pixel centres, as training's label resize),
overlay colours by a palette lookup on the small grid before growing, and the blend with
``cv2.addWeighted`` on uint8. The labelled points reuse the projection the LiDAR modality
already made (:class:`PaintableCloud`) instead of projecting the cloud a second time.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from mlesam_ros.data.classes import CLASS_SETS
from mlesam_ros.data.resample import nearest_upsample, repeat_counts
from mlesam_ros.geometry import LidarProjection
from mlesam_ros.geometry.projection import point_views
from mlesam_ros.jit import kernel, warm_up_with
from mlesam_ros.msgs import labelled_points, labelled_points_dtype, pack_rgb
from mlesam_ros.pipeline.grid import CalibrationCache

# A LiDAR point takes its pixel's label only if it lies on the surface that pixel shows: within
# this fraction of the pixel's nearest depth (plus a fixed margin), so points hidden behind a
# foreground object are not painted with the object's class.
SURFACE_TOLERANCE = (0.05, 0.2)


@dataclass
class PaintableCloud:
    """A LiDAR sweep with its z-buffered projection on the working grid.

    ``grid_scale``: working-grid pixels per camera pixel, (x, y). ``sweep_index``: where each
    row of ``xyz`` is in the whole sweep when the sweep was culled first (None: it is not).
    """

    xyz: np.ndarray
    intensity: np.ndarray | None
    header: Any
    projection: LidarProjection
    grid_scale: tuple[float, float]
    sweep_index: np.ndarray | None = None


def default_palette(class_names: Sequence[str]) -> np.ndarray:
    """DELIVER or Cityscapes colours when the class names match, else distinct hues."""
    for class_set in CLASS_SETS.values():
        if tuple(class_names) == tuple(class_set.names):
            return np.asarray(class_set.palette, dtype=np.uint8)
    # Golden-ratio hue steps keep neighbouring ids far apart in colour.
    return np.array(
        [
            [round(255 * c) for c in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.75, 0.95)]
            for i in range(len(class_names))
        ],
        dtype=np.uint8,
    )


def load_palette(path: str | Path, num_classes: int) -> np.ndarray:
    """Read a YAML list of ``[r, g, b]`` (0..255), one per class (``palette:`` key optional)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"output.palette_file: {path} does not exist")
    data = yaml.safe_load(path.read_text())
    if isinstance(data, dict):
        data = data.get("palette")
    palette = np.asarray(data if data is not None else [], dtype=np.int64)
    if palette.ndim != 2 or palette.shape[1] != 3 or palette.shape[0] < num_classes:
        raise ValueError(
            f"output.palette_file: {path} must list [r, g, b] for each of the {num_classes} "
            f"classes, got shape {palette.shape}"
        )
    if palette.min() < 0 or palette.max() > 255:
        raise ValueError(f"output.palette_file: {path} has values outside 0..255")
    return palette[:num_classes].astype(np.uint8)


class OutputMaker:
    """Builds the published outputs for one model size and any camera size (cached maps)."""

    def __init__(self, palette: np.ndarray, alpha: float) -> None:
        self.alpha = float(alpha)
        lut = np.zeros((max(256, len(palette)), 3), dtype=np.uint8)
        lut[: len(palette)] = palette
        self.lut = lut
        self.packed_rgb = pack_rgb(lut)  # label → the labelled cloud's rgb, as the overlay
        self.cache = CalibrationCache()

    def counts(self, source: tuple[int, int], target: tuple[int, int]) -> tuple:
        """Per-axis repeat counts from the model grid ``source`` to camera ``target``."""
        return self.cache.get("counts", (source, target), lambda: (
            repeat_counts(source[0], target[0]), repeat_counts(source[1], target[1])))

    def labels(self, labels: np.ndarray, size: tuple[int, int], dtype: Any) -> np.ndarray:
        """Ids at camera ``size``, nearest neighbour (ids never blend); always a new array."""
        labels = np.asarray(labels)
        if labels.shape == tuple(size):
            return labels.astype(dtype, copy=True)  # never the engine's (reused) buffer
        labels = labels.astype(dtype, copy=False)
        return nearest_upsample(labels, self.counts(labels.shape, size))

    def overlay(
        self, labels: np.ndarray, size: tuple[int, int], rgb: np.ndarray | None
    ) -> np.ndarray:
        """Class colours of model-grid ``labels`` at ``size`` blended over ``rgb``."""
        # Ids past the table (none for a model's own ids) take its last colour; np.take on
        # the small grid is ~10x faster than fancy indexing.
        colours = np.take(self.lut, np.asarray(labels), axis=0, mode="clip")
        if colours.shape[:2] != tuple(size):
            colours = nearest_upsample(colours, self.counts(colours.shape[:2], size))
        if rgb is None:
            return colours
        return cv2.addWeighted(colours, self.alpha, rgb, 1.0 - self.alpha, 0.0)

    @staticmethod
    def confidence(confidence: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Confidence at camera ``size``, bilinear."""
        return cv2.resize(np.asarray(confidence, dtype=np.float32), (size[1], size[0]),
                          interpolation=cv2.INTER_LINEAR)  # fmt: skip


def paint_points(
    cloud: PaintableCloud, labels: np.ndarray, packed_rgb: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """LiDAR points in the camera's view, each with the label of the camera pixel it lands on.

    Only points on the surface their working-grid pixel shows are kept (``SURFACE_TOLERANCE``
    against that pixel's z-buffer depth); points outside the image or hidden behind nearer ones
    are left out. Returns the structured points (x, y, z[, intensity], label[, rgb]) and their
    ``(row, col)`` camera pixels. ``packed_rgb`` (label → ``0x00RRGGBB``, the overlay's
    palette) adds the ``rgb`` field, so rviz colours the cloud as the overlay.
    """
    projection = cloud.projection
    candidates, nearest = projection.candidates_and_nearest()
    fraction, margin = SURFACE_TOLERANCE
    fast = _paint_compiled(cloud, labels, candidates, nearest, packed_rgb)
    if fast is not None:
        return fast
    on_surface = projection.depth[candidates] <= nearest * (1.0 + fraction) + margin
    keep = candidates[on_surface]
    # Working-grid pixel coordinates back to the camera's: u_cam + 0.5 = (u_grid + 0.5) / s.
    height, width = labels.shape[:2]
    scale_x, scale_y = cloud.grid_scale
    kept_uv = projection.uv[keep]
    cols = np.clip(np.floor((kept_uv[:, 0] + 0.5) / scale_x), 0, width - 1).astype(np.int64)
    rows = np.clip(np.floor((kept_uv[:, 1] + 0.5) / scale_y), 0, height - 1).astype(np.int64)
    point_labels = np.take(labels.reshape(-1), rows * width + cols).astype(np.uint32)
    intensity = None if cloud.intensity is None else cloud.intensity[keep]
    rgb = None if packed_rgb is None else np.take(packed_rgb, point_labels, mode="clip")
    points = labelled_points(cloud.xyz[keep], point_labels, intensity, rgb)
    return points, np.stack([rows, cols], axis=1)


def _paint_compiled(
    cloud: PaintableCloud,
    labels: np.ndarray,
    candidates: np.ndarray,
    nearest: np.ndarray,
    packed_rgb: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`paint_points` as one compiled loop; ``None`` without numba.

    The same arithmetic in the same precision (the surface test in float32, pixels in
    float64), so the published points are identical (``test_pipeline_grid``).
    """
    paint = _paint_kernel()
    xyz = np.asarray(cloud.xyz)
    labels = np.ascontiguousarray(labels)
    if paint is None or xyz.dtype != np.float32 or xyz.ndim != 2 or labels.ndim != 2:
        return None
    dtype = labelled_points_dtype(cloud.intensity is not None, packed_rgb is not None)
    label_column = dtype.names.index("label")
    if cloud.intensity is not None:  # the candidates' only, contiguous: one compiled type
        intensity = np.asarray(cloud.intensity, dtype=np.float32)[candidates]
    else:
        intensity = np.zeros(0, dtype=np.float32)
    capacity = candidates.shape[0]
    table = np.empty((capacity, len(dtype.names)), dtype=np.float32)
    rows = np.empty(capacity, dtype=np.int64)
    cols = np.empty(capacity, dtype=np.int64)
    height, width = labels.shape
    fraction, margin = SURFACE_TOLERANCE
    projection = cloud.projection
    count = paint(candidates, np.asarray(nearest, dtype=np.float32), projection.depth,
                  projection.uv, xyz, intensity, labels.reshape(-1), width, height,
                  float(cloud.grid_scale[0]), float(cloud.grid_scale[1]),
                  np.float32(1.0 + fraction), np.float32(margin), table,
                  table.view(np.uint32)[:, label_column], rows, cols)  # fmt: skip
    if packed_rgb is not None:
        columns = table[:count].view(np.uint32)
        columns[:, -1] = np.take(packed_rgb, columns[:, label_column], mode="clip")
    points = np.ascontiguousarray(table[:count]).view(dtype)
    return points.reshape(-1), np.stack([rows[:count], cols[:count]], axis=1)


@kernel
def _paint_kernel(njit: Any) -> Any:
    """Compile :func:`paint_points` as one loop.

    Per point in view: the surface test against its pixel's z-buffer depth (float32, as numpy
    evaluates it), its camera pixel, its label, and its row of the output table, in one pass
    instead of ~15 numpy passes and gathers (no library fuses a test, a gather and a table).
    """

    @njit
    def paint(candidates, nearest, depth, uv, xyz, intensity, labels, width, height,
              scale_x, scale_y, factor, margin, table, table_labels, rows, cols):  # fmt: skip
        """Fill the table of kept points and their camera pixels; return how many."""
        count = 0
        for j in range(candidates.shape[0]):
            i = candidates[j]
            if not (depth[i] <= nearest[j] * factor + margin):
                continue
            col = min(max(np.floor((uv[i, 0] + 0.5) / scale_x), 0.0), width - 1.0)
            row = min(max(np.floor((uv[i, 1] + 0.5) / scale_y), 0.0), height - 1.0)
            c, r = np.int64(col), np.int64(row)
            table[count, 0] = xyz[i, 0]
            table[count, 1] = xyz[i, 1]
            table[count, 2] = xyz[i, 2]
            if intensity.shape[0] > 0:
                table[count, 3] = intensity[j]  # gathered per candidate
            table_labels[count] = labels[r * width + c]
            rows[count] = r
            cols[count] = c
            count += 1
        return count

    return paint


@warm_up_with(lambda: _paint_kernel())
def _warm_up(paint: Any) -> None:
    # Two rows: a one-row table's label column would be a contiguous ("C") view, another type.
    one, table = np.zeros(1, np.int64), np.zeros((2, 5), np.float32)
    values = np.zeros(1, np.float32)
    for points in point_views():
        for label_type in (np.uint8, np.uint16):  # mono8 and mono16 label images
            paint(one, values, values, np.zeros((1, 2)), points, values,
                  np.zeros(1, label_type), 1, 1, 1.0, 1.0, np.float32(1.05), np.float32(0.2),
                  table, table.view(np.uint32)[:, -1], one.copy(), one.copy())  # fmt: skip
