"""LiDAR: the sweep → a z-buffered projection on the working grid → the model's LiDAR image.

One projection serves both the LiDAR modality and the labelled points published after
inference (:class:`~mlesam_ros.pipeline.outputs.PaintableCloud`). The winners of each pixel
are packed with their three codes (:func:`~mlesam_ros.geometry.lidar_image.projection_keys`),
then dilated and shrunk to the model input in one compiled pass that dilates only the
pixels the sparse shrink (:func:`~mlesam_ros.data.resample.resize_sparse`) looks at
(:func:`~mlesam_ros.geometry.lidar_dilation.dilation_kernels`); without numba, the numpy
dilation and the sparse resize run in turn.
"""

from __future__ import annotations

import numpy as np

from mlesam_ros.data.resample import block_rank, resize_image, whole_shrink, window_bounds
from mlesam_ros.geometry import frustum_candidates, project_lidar
from mlesam_ros.geometry.lidar_dilation import (
    EMPTY_FOUND,
    check_dilation,
    dilate_keys,
    dilation_kernels,
)
from mlesam_ros.geometry.lidar_image import projection_keys
from mlesam_ros.geometry.projection import EMPTY_KEY, compiled_supports
from mlesam_ros.jit import warm_up_with
from mlesam_ros.msgs import cloud_field, cloud_xyz, header_stamp_ns, pointcloud2_to_array
from mlesam_ros.pipeline.outputs import PaintableCloud
from mlesam_ros.pipeline.sensors import FrameJob, Issue, Lookup, PreparedFrame, SensorInputs
from mlesam_ros.text import quote


def prepare_points(
    inputs: SensorInputs, job: FrameJob, prepared: PreparedFrame, rgb_frame: str,
    lookup: Lookup,
) -> None:
    """Project and encode the LiDAR sweep of ``job`` into ``prepared`` (issues on failure)."""
    topic, msg, issues = inputs.config.topics["points"], job.messages["points"], prepared.issues
    shared = None
    try:
        if inputs.sweeps is None:
            # A view of the message; points with a NaN coordinate fall out in the view cull.
            cloud = pointcloud2_to_array(msg, topic, skip_nans=False)
        else:  # several cameras: decoded once per sweep (mlesam_ros.pipeline.sweep)
            shared = inputs.sweeps.decode(msg, topic)
            cloud = shared.cloud
    except ValueError as error:
        issues.append(Issue("points", topic, f"{error}; LiDAR left out of this frame"))
        return
    empty = "empty point cloud (no finite x, y, z); LiDAR left out of this frame"
    if cloud.size == 0:
        issues.append(Issue("points", topic, empty))
        return
    if prepared.camera is None or prepared.grid is None:
        text = "cannot project the LiDAR without the RGB CameraInfo; LiDAR left out"
        issues.append(Issue("points", topic, text))
        return
    T = inputs.extrinsic("points", rgb_frame, msg, header_stamp_ns(msg), lookup, issues)
    if T is None:
        return
    sweep = cloud_xyz(cloud) if shared is None else shared.xyz
    xyz = sweep
    intensity = cloud_field(cloud, "intensity") if shared is None else shared.intensity
    if intensity is None and "lidar" in inputs.used:
        # Livox drivers and many simulators send x, y, z only: the encoding's intensity
        # channel is then 0 everywhere, which the model never saw in training.
        fields = ", ".join(quote(name, 20) for name in cloud.dtype.names[:8])
        prepared.degraded["points"] = (
            f"no 'intensity' field (fields: {fields}); the LiDAR image's intensity channel "
            "is 0, unlike in training: publish intensity (or reflectivity as intensity)"
        )
    grid = prepared.grid
    kept = None  # indices into the sweep of the points projected (None: all of them)
    if not compiled_supports(grid, xyz, rectified=False):
        if shared is not None:
            # Several cameras: only this camera's sector, from azimuths computed once per
            # sweep. (The compiled loop needs no such cull: it costs what it would save.)
            kept = shared.in_view(T, grid, inputs.sweeps.sectors)
            if kept is not None:
                xyz = xyz[kept]
                intensity = None if intensity is None else intensity[kept]
        # A spinning LiDAR puts most points outside a camera's view: for the numpy passes,
        # keep only those the exact projection may use (one float32 pass; the result equals
        # projecting them all). The compiled loop culls as it goes, faster than this pass.
        in_view = frustum_candidates(xyz, T, grid, min_depth=0.1)
        xyz = xyz[in_view]
        intensity = None if intensity is None else intensity[in_view]
        kept = in_view if kept is None else kept[in_view]
    # One projection, on the working grid: the LiDAR image and the labelled points share it.
    projection = project_lidar(xyz, T, grid, min_depth=0.1)
    if projection.point_index.size == 0:
        if not np.isfinite(sweep).all(axis=1).any():  # judged on the whole sweep
            issues.append(Issue("points", topic, empty))
            return
        text = ("no LiDAR point lands in the RGB camera's view (check the extrinsic); "
                "LiDAR left out of this frame")  # fmt: skip
        issues.append(Issue("points", topic, text))
        return
    if "lidar" in inputs.used:
        keys = projection_keys(
            projection, xyz, intensity,
            intensity_max=inputs.config.lidar_intensity_max,
            max_range=inputs.config.lidar_max_range_m,
        )  # fmt: skip
        prepared.images["lidar"] = lidar_model_image(
            keys, inputs.config.lidar_dilation, inputs.model_size
        )
    scale = (grid.width / prepared.size[1], grid.height / prepared.size[0])
    prepared.cloud = PaintableCloud(xyz, intensity, msg.header, projection, scale, kept)


def lidar_model_image(keys: np.ndarray, radius: int, size: tuple[int, int]) -> np.ndarray:
    """``resize_image(dilate_keys(keys, radius), size, "lidar")``, in one pass when it can.

    ``keys`` are :func:`~mlesam_ros.geometry.lidar_image.projection_keys` on the working grid.
    The shrink keeps one pixel per footprint (the valid one nearest its centre), so only the
    pixels it looks at are dilated, nearest the centre first, until one has a return in reach.
    """
    kernels = dilation_kernels()
    if kernels is None:
        return resize_image(dilate_keys(keys, radius), size, "lidar")
    check_dilation(radius)
    keys = np.ascontiguousarray(keys)
    out = np.empty((*size, 3), dtype=np.uint8)
    factors = whole_shrink(keys.shape, size)
    if factors is not None:  # blocks: one candidate order for all of them
        fy, fx = factors
        order = np.array([divmod(k, fx) for k in block_rank(fy, fx)], dtype=np.int64)
        kernels[0](keys, radius, EMPTY_KEY, EMPTY_FOUND, fy, fx, order, out)
    else:  # footprints of varying size (resize_sparse's window scan)
        rows, cols = window_bounds(size[0], keys.shape[0]), window_bounds(size[1], keys.shape[1])
        kernels[1](keys, radius, EMPTY_KEY, EMPTY_FOUND, *rows, *cols, out)
    return out


@warm_up_with(lambda: dilation_kernels())
def _warm_up(kernels: object) -> None:
    keys = np.zeros((2, 2), np.int64)
    lidar_model_image(keys, 1, (1, 1))
    lidar_model_image(keys, 1, (3, 3))
