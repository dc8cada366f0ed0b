"""One labelled cloud from several cameras: each point labelled by the camera that sees it best.

Each camera paints the points of the sweep that land on the surface its pixels show (the
same projection, surface test and pixel as the one-camera labelled points,
:func:`~mlesam_ros.pipeline.outputs.paint_points`): :func:`camera_points` records per point
its index in the sweep, the label, the model's confidence in that label and how far from the
image centre it lands. Where cameras overlap a point is painted more than once, and
:func:`fuse_points` keeps one label per point by this rule:

1. the camera whose confidence in its label is highest (the same model judges every camera,
   so its softmax probabilities compare);
2. on equal confidence, the camera where the point lands nearer its image centre (less lens
   distortion, further from the image border where context is cut off);
3. on a tie in both, the camera listed first in ``cameras.names``.

The fused cloud carries the sweep's ``x, y, z[, intensity]``, ``label``, ``rgb`` (the class
colour, as the overlays) and ``camera``: the index in ``cameras.names`` of the camera whose
label it took. Points no camera sees are left out, as in the one-camera cloud.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlesam_ros.data.resample import resize_indices
from mlesam_ros.msgs import labelled_points_dtype
from mlesam_ros.pipeline.outputs import SURFACE_TOLERANCE, PaintableCloud

CAMERA_FIELD = "camera"


@dataclass
class CameraPoints:
    """The points of one sweep that one camera labels, one entry per point."""

    camera: int  # index in cameras.names
    index: np.ndarray  # int64 position in the sweep
    label: np.ndarray  # uint32
    confidence: np.ndarray  # float32, the model's probability of ``label``
    centrality: np.ndarray  # float32, distance from the image centre (0) to a corner (1)


def camera_points(
    cloud: PaintableCloud,
    labels: np.ndarray,
    confidence: np.ndarray | None,
    size: tuple[int, int],
    camera: int,
) -> CameraPoints:
    """Return what camera ``camera`` says of the points of ``cloud``.

    ``labels``/``confidence`` are on the model's grid; each point takes the model pixel that
    the published camera-size labels repeat at its camera pixel (nearest neighbour at pixel
    centres), so its label equals the camera's published label there. Without confidence
    every point counts 1.0 (the centre rule then decides).
    """
    projection = cloud.projection
    candidates, nearest = projection.candidates_and_nearest()
    fraction, margin = SURFACE_TOLERANCE
    depth = np.asarray(projection.depth[candidates], np.float32)
    on_surface = depth <= np.asarray(nearest, np.float32) * np.float32(1.0 + fraction) + (
        np.float32(margin)
    )
    keep = candidates[on_surface]
    height, width = size
    scale_x, scale_y = cloud.grid_scale
    uv = projection.uv[keep]
    cols = np.clip(np.floor((uv[:, 0] + 0.5) / scale_x), 0, width - 1).astype(np.int64)
    rows = np.clip(np.floor((uv[:, 1] + 0.5) / scale_y), 0, height - 1).astype(np.int64)
    labels = np.asarray(labels)
    model_rows = resize_indices(labels.shape[0], height)[rows]
    model_cols = resize_indices(labels.shape[1], width)[cols]
    point_labels = labels[model_rows, model_cols].astype(np.uint32)
    if confidence is None:
        point_confidence = np.ones(keep.size, np.float32)
    else:
        point_confidence = np.asarray(confidence, np.float32)[model_rows, model_cols]
    dx = (cols + 0.5) / width - 0.5
    dy = (rows + 0.5) / height - 0.5
    centrality = (np.hypot(dx, dy) / np.hypot(0.5, 0.5)).astype(np.float32)
    index = keep if cloud.sweep_index is None else np.asarray(cloud.sweep_index)[keep]
    return CameraPoints(camera, index.astype(np.int64), point_labels, point_confidence,
                        centrality)  # fmt: skip


def fuse_points(
    views: Sequence[CameraPoints],
    xyz: np.ndarray,
    intensity: np.ndarray | None,
    packed_rgb: np.ndarray | None = None,
) -> np.ndarray:
    """Return one structured cloud: each point any camera labels, with the best one's label.

    ``xyz``/``intensity`` are the whole sweep's; the rule is in the module docstring. Points
    come in sweep order. Fields: x, y, z[, intensity], label[, rgb], camera (uint8).
    """
    count = xyz.shape[0]
    best_confidence = np.full(count, -np.inf, np.float32)
    best_centrality = np.full(count, np.inf, np.float32)
    best_camera = np.full(count, -1, np.int32)
    best_label = np.zeros(count, np.uint32)
    for view in sorted(views, key=lambda v: v.camera):  # lower index first: it keeps ties
        index = view.index
        held_confidence, held_centrality = best_confidence[index], best_centrality[index]
        better = (view.confidence > held_confidence) | (
            (view.confidence == held_confidence) & (view.centrality < held_centrality)
        )
        winners = index[better]
        best_confidence[winners] = view.confidence[better]
        best_centrality[winners] = view.centrality[better]
        best_camera[winners] = view.camera
        best_label[winners] = view.label[better]
    chosen = np.flatnonzero(best_camera >= 0)
    return fused_cloud(np.asarray(xyz)[chosen], best_label[chosen],
                       None if intensity is None else np.asarray(intensity)[chosen],
                       None if packed_rgb is None else np.take(packed_rgb, best_label[chosen],
                                                               mode="clip"),
                       best_camera[chosen])  # fmt: skip


def fused_cloud_dtype(with_intensity: bool, with_rgb: bool) -> np.dtype:
    """Return the labelled points' fields plus ``camera`` (uint8), padded to 4-byte words."""
    base = labelled_points_dtype(with_intensity, with_rgb)
    names = [*base.names, CAMERA_FIELD]
    formats = [base.fields[name][0] for name in base.names] + [np.dtype(np.uint8)]
    offsets = [base.fields[name][1] for name in base.names] + [base.itemsize]
    return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                     "itemsize": base.itemsize + 4})  # fmt: skip


def fused_cloud(
    xyz: np.ndarray,
    labels: np.ndarray,
    intensity: np.ndarray | None,
    rgb: np.ndarray | None,
    camera: np.ndarray,
) -> np.ndarray:
    """Pack the fused points (see :func:`fused_cloud_dtype`)."""
    dtype = fused_cloud_dtype(intensity is not None, rgb is not None)
    points = np.zeros(xyz.shape[0], dtype=dtype)
    points["x"], points["y"], points["z"] = np.asarray(xyz, np.float32).T
    if intensity is not None:
        points["intensity"] = intensity
    points["label"] = labels
    if rgb is not None:
        points["rgb"] = np.asarray(rgb, np.uint32).view(np.float32)
    points[CAMERA_FIELD] = camera
    return points
