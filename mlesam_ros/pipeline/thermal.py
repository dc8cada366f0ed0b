"""Thermal: the thermal image → the RGB camera's working grid → the model's thermal image.

A thermal camera beside the RGB one is warped onto the working grid through the parallax of
this frame's depth (:class:`~mlesam_ros.geometry.ParallaxMap`), or through a plane at
infinity without depth; then contrast-stretched between the 1st and 99th percentile of the
pixels it sees (:func:`~mlesam_ros.data.encode.encode_thermal`, as training does), blank
elsewhere, and area-shrunk to the model input.

The compiled loops (numpy's arithmetic in its precision; numpy stays the reference and the
fallback without numba) encode one channel in one pass instead of three channels in several,
and find the two percentiles without sorting: no library takes order statistics of the
positive values of an image without a full sort or selection.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from mlesam_ros.data.encode import encode_thermal
from mlesam_ros.data.resample import area_resize
from mlesam_ros.geometry import ParallaxMap, remap
from mlesam_ros.jit import kernel, warm_up_with
from mlesam_ros.msgs import header_stamp_ns, image_to_numpy
from mlesam_ros.pipeline.grid import camera_fingerprint
from mlesam_ros.pipeline.sensors import FrameJob, Issue, Lookup, PreparedFrame, SensorInputs


def prepare_thermal(
    inputs: SensorInputs, job: FrameJob, prepared: PreparedFrame, rgb_frame: str,
    lookup: Lookup,
) -> None:
    """Register and encode the thermal image of ``job`` into ``prepared`` (issues on failure)."""
    topic, msg, issues = (
        inputs.config.topics["thermal"],
        job.messages["thermal"],
        prepared.issues,
    )
    if str(msg.encoding) not in ("mono8", "mono16"):
        issues.append(
            Issue(
                "thermal",
                topic,
                f"encoding '{msg.encoding}' is not a thermal "
                "encoding; publish mono8 or mono16 (raw counts)",
            )
        )
        return
    try:
        thermal = image_to_numpy(msg, topic).astype(np.float32)
    except ValueError as error:
        issues.append(Issue("thermal", topic, f"{error}; thermal left out of this frame"))
        return
    T = inputs.extrinsic("thermal", rgb_frame, msg, header_stamp_ns(msg), lookup, issues)
    if T is None:
        return
    direct, thermal_camera = inputs.sensor_camera("thermal", thermal.shape, T, job, prepared)
    if "thermal" not in inputs.used:  # checked and reported, but nothing feeds on it
        return
    grid = prepared.grid
    if direct:
        warped = thermal if grid is None else area_resize(thermal, grid.size)
    elif thermal_camera is None:
        return
    else:
        key = (camera_fingerprint(thermal_camera), camera_fingerprint(grid),
               np.asarray(T, np.float64).tobytes())  # fmt: skip
        parallax = inputs.cache.get(
            "thermal_rays", key, lambda: ParallaxMap(thermal_camera, grid, T)
        )
        if prepared.depth_grid is not None:
            # Exact parallax from this frame's depth: the tables change every frame, but
            # only the working grid's pixels, from rays rotated once per calibration.
            maps = parallax.maps(prepared.depth_grid)
        else:  # a plane at infinity: the tables are fixed, in OpenCV's fixed-point form
            maps = inputs.cache.get("thermal_map", key, lambda: cv2.convertMaps(
                *parallax.maps(None), cv2.CV_16SC2))  # fmt: skip
        warped = remap(thermal, maps)
    # Contrast from the pixels the thermal camera sees, blank elsewhere: the same encoding
    # as training (``mlesam_ros.data.synthetic_dataset.frame_to_images``).
    value_range = positive_percentiles(warped, (1.0, 99.0))
    if value_range is None:
        text = ("no thermal pixel > 0 in the RGB camera's view (a black or covered "
                "camera, or out of view); thermal left out")  # fmt: skip
        issues.append(Issue("thermal", topic, text))
        return
    prepared.images["thermal"] = thermal_model_image(warped, value_range, inputs.model_size)


def thermal_model_image(
    warped: np.ndarray, value_range: tuple[float, float], size: tuple[int, int]
) -> np.ndarray:
    """``area_resize(encode_thermal(warped, value_range) * (warped > 0), size)``, cheaper.

    The three channels of the encoding are equal and an area resize treats channels alike,
    so one channel is encoded, masked and shrunk, and replicated at the model size.
    """
    kernel = _thermal_kernel()
    low, high = value_range
    if kernel is None or warped.ndim != 2 or warped.dtype != np.float32:
        image = encode_thermal(warped, value_range)
        image *= (warped > 0)[:, :, None]
        return area_resize(image, size)
    if not high > low:
        high = low + 1.0  # as encode_thermal: a flat frame encodes as uniform 0
    grey = np.empty(warped.shape, dtype=np.uint8)
    kernel(warped, np.float32(low), np.float32(high - low), grey)
    return np.repeat(area_resize(grey, size)[:, :, None], 3, axis=2)


@kernel
def _thermal_kernel(njit: Any) -> Any:
    """Encode the seen pixels of one channel (the three are equal) in one pass."""

    @njit
    def encode_seen(values, low, span, grey):
        """``rint(255 * clip((v - low) / span, 0, 1))`` in float32 where ``v > 0``, else 0."""
        zero, one = np.float32(0.0), np.float32(1.0)
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                value = values[i, j]
                if value > 0:
                    scaled = min(max((value - low) / span, zero), one)
                    grey[i, j] = np.uint8(np.rint(np.float32(255.0) * scaled))
                else:
                    grey[i, j] = 0

    return encode_seen


def positive_percentiles(
    values: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.0)
) -> tuple[float, float] | None:
    """``np.percentile(values[values > 0], percentiles)`` of a float32 image; None if none.

    Exact order statistics without sorting: a positive float32 sorts like its bits, so one
    pass counts values per top-16-bit bucket and a second sorts only the few buckets holding
    the wanted ranks; then numpy's "linear" interpolation between neighbours, in its dtypes.
    """
    kernels = _percentile_kernels()
    if kernels is None or values.dtype != np.float32:
        positive = values[values > 0]
        if positive.size == 0:
            return None
        # Sorted first: numpy's SIMD sort plus a percentile of sorted values is ~3x faster
        # than the selection np.percentile runs on unsorted ones, with the same result.
        low, high = np.percentile(np.sort(positive), percentiles)
        return float(low), float(high)
    histogram = np.zeros(1 << 15, dtype=np.int64)
    count = kernels[0](values, histogram)
    if count == 0:
        return None
    # numpy's "linear" method, in its dtypes: the virtual index (n - 1) * q in float64, the
    # neighbours' difference in float32, the interpolation in float64 (Python floats are
    # float64, so scalars here reproduce the array arithmetic).
    virtual = [(count - 1) * (q / 100) for q in percentiles]
    below = [min(math.floor(v), count - 1) for v in virtual]
    ranks = np.array(sorted({*below, *(min(b + 1, count - 1) for b in below)}), np.int64)
    stats = np.empty(ranks.size, dtype=np.float32)
    kernels[1](values, histogram, ranks, stats)
    value_of = dict(zip(ranks.tolist(), stats, strict=True))
    result = []
    for v, b in zip(virtual, below, strict=True):
        low, high, gamma = value_of[b], value_of[min(b + 1, count - 1)], v - b
        difference = float(high - low)  # float32 subtraction
        result.append(float(high) - difference * (1 - gamma) if gamma >= 0.5
                      else float(low) + difference * gamma)  # fmt: skip
    return result[0], result[1]


@kernel
def _percentile_kernels(njit: Any) -> Any:
    """``(histogram, select)``: exact order statistics of positive float32 without a sort."""

    @njit
    def histogram(values, counts):
        """Count the positive values per top-16-bit bucket; return how many are positive."""
        total = 0
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                value = values[i, j]
                if value > 0:
                    counts[np.float32(value).view(np.int32) >> 16] += 1
                    total += 1
        return total

    @njit
    def select(values, counts, ranks, out):
        """``out[r]`` = the ``ranks[r]``-th smallest positive value (``ranks`` ascending)."""
        # The bucket of each rank and how many values lie in lower buckets.
        wanted = ranks.shape[0]
        buckets = np.empty(wanted, np.int64)
        before = np.empty(wanted, np.int64)
        seen, r = 0, 0
        for bucket in range(counts.shape[0]):
            while r < wanted and ranks[r] < seen + counts[bucket]:
                buckets[r] = bucket
                before[r] = seen
                r += 1
            seen += counts[bucket]
        # One pool slice per distinct bucket, filled in one pass through a bucket → slot table.
        slot_of = np.full(counts.shape[0], -1, np.int64)
        start = np.zeros(wanted + 1, np.int64)
        slots = 0
        for r in range(wanted):
            if slot_of[buckets[r]] < 0:
                slot_of[buckets[r]] = slots
                start[slots + 1] = start[slots] + counts[buckets[r]]
                slots += 1
        pool = np.empty(start[slots], np.float32)
        filled = start[:slots].copy()
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                value = values[i, j]
                if value > 0:
                    slot = slot_of[np.float32(value).view(np.int32) >> 16]
                    if slot >= 0:
                        pool[filled[slot]] = value
                        filled[slot] += 1
        for slot in range(slots):
            pool[start[slot] : start[slot + 1]].sort()
        for r in range(wanted):
            out[r] = pool[start[slot_of[buckets[r]]] + ranks[r] - before[r]]

    return histogram, select


@warm_up_with(lambda: _thermal_kernel())
def _warm_up(kernel: Any) -> None:
    grid = np.ones((2, 2), np.float32)
    thermal_model_image(grid, (0.0, 1.0), (1, 1))
    positive_percentiles(grid)
