"""Where a frame's time goes, per stage: measured per frame, kept over a window, p50/p90.

A frame's latency (RGB stamp → labels published) is the sum of what happened to it:

``sync_wait``
    RGB arrival → the frame left the synchroniser: waiting for the slowest sensor (up to
    ``sync.timeout_s`` when one is late or dead). Node clock: bag time in replay.
``queue``
    synchroniser → the inference worker took it (the worker was busy with the frame before).
``decode``
    decompressing compressed payloads and decoding the RGB image.
``preprocess``
    the RGB to the model input, depth, thermal and LiDAR into the RGB camera, the sensors'
    health checks and the model's input tensor.
``inference``
    the model.
``outputs``
    labels at camera size, confidence, overlay, labelled points, serialising and publishing.

``/diagnostics`` carries ``<stage>_p50_ms`` and ``<stage>_p90_ms`` over the last
:data:`STAGE_WINDOW` frames; replay's summary carries them over the whole bag.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping

import numpy as np

STAGES = ("sync_wait", "queue", "decode", "preprocess", "inference", "outputs")
STAGE_WINDOW = 200
"""Frames kept for the stage percentiles in ``/diagnostics`` (as the latency window)."""
DECODE_STEPS = ("decode rgb", "decompress")
"""The frame path's own step names (``FramePath.stage_ms``) that are decoding."""


def frame_stages(
    *,
    sync_wait_ms: float | None,
    queue_ms: float,
    prepare_ms: float,
    path_steps_ms: Mapping[str, float],
    model_input_ms: float,
    inference_ms: float,
    outputs_ms: float,
) -> dict[str, float]:
    """One frame's stages from the worker's clock marks and the frame path's own steps.

    ``prepare_ms`` is the whole of ``FramePath.prepare``; its decoding steps
    (:data:`DECODE_STEPS`) are split off as ``decode``, the rest is ``preprocess`` together
    with ``model_input_ms`` (health checks, input tensor). ``sync_wait_ms`` is None when the
    RGB message's arrival is unknown (the stage is then left out).
    """
    decode = sum(path_steps_ms.get(step, 0.0) for step in DECODE_STEPS)
    stages = {
        "queue": max(queue_ms, 0.0),
        "decode": decode,
        "preprocess": max(prepare_ms - decode, 0.0) + model_input_ms,
        "inference": inference_ms,
        "outputs": outputs_ms,
    }
    if sync_wait_ms is not None:
        stages["sync_wait"] = max(sync_wait_ms, 0.0)
    return stages


def percentiles(values: Iterable[float]) -> tuple[float, float]:
    """``(p50, p90)`` of ``values`` (NaN when there are none)."""
    array = np.asarray(list(values), dtype=np.float64)
    if not array.size:
        return float("nan"), float("nan")
    p50, p90 = np.percentile(array, [50, 90])
    return float(p50), float(p90)


class StageWindow:
    """The last ``size`` frames' stage times (take copies under the core's lock)."""

    def __init__(self, size: int = STAGE_WINDOW) -> None:
        self.size = size
        self.samples: dict[str, collections.deque] = {
            stage: collections.deque(maxlen=size) for stage in STAGES
        }

    def add(self, stages: Mapping[str, float]) -> None:
        """Record one frame's stages (names outside :data:`STAGES` are ignored)."""
        for stage, value in stages.items():
            if stage in self.samples:
                self.samples[stage].append(float(value))

    def copy(self) -> StageWindow:
        """Return a copy later frames do not change."""
        other = StageWindow(self.size)
        for stage, values in self.samples.items():
            other.samples[stage].extend(values)
        return other

    def values(self) -> dict[str, float]:
        """``{"<stage>_p50_ms": .., "<stage>_p90_ms": ..}`` for ``/diagnostics``."""
        out: dict[str, float] = {}
        for stage in STAGES:
            p50, p90 = percentiles(self.samples[stage])
            out[f"{stage}_p50_ms"], out[f"{stage}_p90_ms"] = p50, p90
        return out


__all__ = ["STAGES", "STAGE_WINDOW", "StageWindow", "frame_stages", "percentiles"]
