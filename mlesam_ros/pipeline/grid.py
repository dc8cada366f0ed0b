"""Where the node computes each modality: a working grid near the model's input, not the camera.

The model sees ``input_size`` pixels (96x128 for the shipped model) while a camera sends up to
1920x1080; encoding every modality at camera resolution and then shrinking it threw away ~99 %
of the work. The node therefore registers, projects and encodes on a *working grid*: the RGB
camera scaled to ``GRID_FACTOR`` x the model input (the camera itself when it is at most
``DIRECT_RATIO`` x the model input, where that is already cheap and gives exactly the
camera-grid results), then shrinks the working grid to the model input with training's
resampler (:mod:`mlesam_ros.data.resample`): dense images by area, depth over its valid
pixels only, LiDAR one real return per pixel, so an empty pixel never dims or shortens a
return.

Everything that depends only on the calibration (the working camera and its pixel rays,
registration tables, index maps) lives in a :class:`CalibrationCache`, rebuilt only when the
CameraInfo or extrinsic behind it changes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from mlesam_ros.geometry import CameraModel

GRID_FACTOR = 2
DIRECT_RATIO = 3.0


def working_size(camera_size: tuple[int, int], model_size: tuple[int, int]) -> tuple[int, int]:
    """``(H, W)`` of the working grid for a camera and a model input (see module doc)."""
    (camera_h, camera_w), (model_h, model_w) = camera_size, model_size
    if camera_h * camera_w <= DIRECT_RATIO**2 * model_h * model_w:
        return camera_h, camera_w
    if camera_h <= GRID_FACTOR * model_h or camera_w <= GRID_FACTOR * model_w:
        return camera_h, camera_w
    return GRID_FACTOR * model_h, GRID_FACTOR * model_w


def camera_fingerprint(camera: CameraModel) -> tuple:
    """Return a hashable key of everything that defines ``camera``'s projection."""
    return (camera.width, camera.height, camera.distortion_model, camera.K.tobytes(),
            camera.D.tobytes(), camera.R.tobytes(),
            None if camera.P is None else camera.P.tobytes())  # fmt: skip


class CalibrationCache:
    """One cached value per name, rebuilt when its key (the calibration behind it) changes.

    ``builds`` counts rebuilds per name, so tests (and diagnostics) can tell reuse from rebuild.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Hashable, Any]] = {}
        self.builds: dict[str, int] = {}

    def get(self, name: str, key: Hashable, build: Callable[[], Any]) -> Any:
        """Return the value cached under ``name`` if built for ``key``, else build it."""
        entry = self._entries.get(name)
        if entry is not None and entry[0] == key:
            return entry[1]
        value = build()
        self._entries[name] = (key, value)
        self.builds[name] = self.builds.get(name, 0) + 1
        return value
