"""Sensor corruptions as data: what a present-but-wrong sensor delivers, with a severity.

A sensor that vanishes is easy (the model is told it is absent). A sensor that *lies* — a
camera blinded by glare, a driver repeating its last image, a LiDAR shaken off its extrinsic —
still arrives as a valid message. This module makes such messages on purpose, so training can
teach the router to outweigh them, evaluation can score them (``mlesam eval --corrupt``) and
``mlesam synth --corrupt`` can record a drive that the node must flag.

Kinds (``KINDS``; the DELIVER benchmark's five sensor-failure cases first, then what robots
meet) and the modalities each applies to (``APPLIES``):

- ``motion_blur``, ``overexposure``, ``underexposure`` (cameras), ``jitter`` (LiDAR points
  shaken), ``low_resolution`` (event in DELIVER; any image here): DELIVER's cases.
- ``frozen``: the image of an earlier frame, repeated with a new stamp.
- ``constant``: a uniform image that still looks valid (a lens cap, a depth camera facing a
  close wall, a LiDAR whose window is covered).
- ``black``: all zeros (for depth: no returns anywhere).
- ``noise``: heavy noise (LiDAR: a share of the returns scattered at random ranges).
- ``occlusion``: part of the view covered (mud or a wiper on the lens, a blocked sector).
- ``dropout``: holes (depth pixels or LiDAR returns lost in patches).
- ``extrinsic``: the sensor moved against its calibration by a few degrees and centimetres.

Severity runs 1 (mild) .. 5 (severe), as in DELIVER and ImageNet-C; ``SEVERITY_DEFAULT`` is 3.

Two entry points share the same primitives:

- ``corrupt_sensor`` works on a sensor's own data (RGB uint8, depth in metres, thermal counts,
  LiDAR points), before encoding: the synthetic world and ``mlesam eval`` on synthetic frames
  use it, so the node's encoding sees exactly what a robot would give it.
- ``corrupt_encoded`` works on the model's uint8 modality image (as DELIVER/MUSES ship them,
  and as training caches them): training samples corruptions this way per sample and modality
  (a few microseconds each, no re-render), and evaluation on dataset folders uses it.
"""

from mlesam_ros.data.corruptions.encoded import corrupt_encoded
from mlesam_ros.data.corruptions.images import (
    blob_mask,
    exposure,
    extrinsic_offset,
    gaussian_noise,
    low_resolution,
    motion_blur,
    overexposure,
    shift_image,
    underexposure,
)
from mlesam_ros.data.corruptions.sensor import DEPTH_MAX_M, THERMAL_FULL_SCALE, corrupt_sensor
from mlesam_ros.data.corruptions.spec import (
    APPLIES,
    FROZEN_LAG,
    KINDS,
    SEVERITIES,
    SEVERITY_DEFAULT,
    Corruption,
    ScheduledCorruption,
    kinds_for,
    parse_corruptions,
    sample_corruption,
)

__all__ = [
    "APPLIES",
    "DEPTH_MAX_M",
    "FROZEN_LAG",
    "KINDS",
    "SEVERITIES",
    "SEVERITY_DEFAULT",
    "THERMAL_FULL_SCALE",
    "Corruption",
    "ScheduledCorruption",
    "blob_mask",
    "corrupt_encoded",
    "corrupt_sensor",
    "exposure",
    "extrinsic_offset",
    "gaussian_noise",
    "kinds_for",
    "low_resolution",
    "motion_blur",
    "overexposure",
    "parse_corruptions",
    "sample_corruption",
    "shift_image",
    "underexposure",
]
