"""Turn ray-cast hits into sensor data: RGB, metric depth, thermal counts and LiDAR points.

Conditions follow DELIVER's cases (sun, cloud, night, fog, rain). Each changes what the
sensors see the way the real ones degrade: night darkens and adds noise to RGB while thermal
is unaffected, fog washes out RGB contrast and cuts the LiDAR's range, rain darkens, streaks
and makes the LiDAR drop returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlesam_ros.data.synth.raycast import GROUND, SKY, Hits
from mlesam_ros.data.synth.scene import (
    CLASS_ALBEDO,
    CLASS_REFLECTIVITY,
    CLASS_TEMPERATURE,
    VEHICLE_CLASSES,
    C,
    Scene,
)
from mlesam_ros.data.synth.sensors import LidarSpec

LIDAR_DTYPE = np.dtype(
    [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("ring", "<u2")]
)
"""LiDAR point layout, the fields a Velodyne/Ouster driver publishes in PointCloud2."""

THERMAL_COUNTS_PER_KELVIN = 100
"""Thermal images are mono16 centi-kelvin (as radiometric cameras' 'TLinear' mode)."""


@dataclass(frozen=True)
class Condition:
    """Weather/lighting parameters of one of DELIVER's cases."""

    name: str
    sun: float  # direct light strength
    ambient: float
    sky_rgb: tuple[float, float, float]
    sky_kelvin: float
    fog_visibility_m: float  # meteorological visibility; inf = clear
    rgb_noise: float  # std in 0..255 units
    lidar_max_range: float
    lidar_dropout: float
    rain: bool = False
    headlights: bool = False
    temperature_offset: float = 0.0


CONDITIONS: dict[str, Condition] = {
    "sun": Condition("sun", 1.0, 0.35, (0.50, 0.68, 0.95), 240.0, np.inf, 2.0, 120.0, 0.0),
    "cloud": Condition("cloud", 0.25, 0.65, (0.72, 0.74, 0.78), 262.0, np.inf, 2.5, 120.0, 0.0),
    "night": Condition("night", 0.0, 0.04, (0.02, 0.03, 0.07), 245.0, np.inf, 9.0, 120.0, 0.0,
                       headlights=True, temperature_offset=-6.0),
    "fog": Condition("fog", 0.15, 0.7, (0.80, 0.80, 0.82), 272.0, 45.0, 3.0, 45.0, 0.15,
                     temperature_offset=-3.0),
    "rain": Condition("rain", 0.1, 0.45, (0.45, 0.47, 0.50), 270.0, 300.0, 5.0, 90.0, 0.10,
                      rain=True, temperature_offset=-4.0),
}  # fmt: skip


def get_condition(name: str) -> Condition:
    """Look up a condition by name with an error that lists the valid ones."""
    try:
        return CONDITIONS[name]
    except KeyError:
        raise ValueError(
            f"condition: unknown {name!r}; choose from {', '.join(CONDITIONS)}"
        ) from None


def surface_classes(hits: Hits, scene: Scene) -> np.ndarray:
    """DELIVER id of the surface each ray hit (uint8): primitive, ground layout or Sky."""
    classes = np.full(len(hits.t), C["Sky"], dtype=np.uint8)
    solid = hits.primitive >= 0
    classes[solid] = scene.class_id[hits.primitive[solid]]
    ground = hits.primitive == GROUND
    classes[ground] = scene.ground_classes(hits.points[ground, 0], hits.points[ground, 1])
    return classes


def _albedo(hits: Hits, scene: Scene, classes: np.ndarray) -> np.ndarray:
    albedo = CLASS_ALBEDO[classes].copy()
    solid = hits.primitive >= 0
    albedo[solid] = scene.albedo[hits.primitive[solid]]
    x, y, z = hits.points.T
    # Cheap procedural texture so surfaces are not flat colours: pavement grain on the ground
    # and rows of windows on buildings (world-aligned, so they move consistently with ego).
    grain = 1.0 + 0.06 * np.sin(1.9 * x + 0.7) * np.sin(2.3 * y) + 0.04 * np.sin(7.1 * x)
    albedo *= grain[:, None].astype(np.float32)
    building = classes == C["Building"]
    along = np.where(np.abs(hits.normals[:, 0]) > 0.5, y, x)
    window = building & (np.mod(along, 3.0) > 1.0) & (np.mod(z, 3.2) > 1.1) & (z > 1.0)
    albedo[window] *= 0.35
    return albedo


def render_rgb(
    hits: Hits,
    scene: Scene,
    classes: np.ndarray,
    condition: Condition,
    sun_direction: np.ndarray,
    shape: tuple[int, int],
    rng: np.random.Generator,
) -> np.ndarray:
    """Render an (H, W, 3) uint8 image: Lambertian shading, fog, night lights and noise."""
    albedo = _albedo(hits, scene, classes)
    shade = condition.ambient + condition.sun * np.clip(hits.normals @ sun_direction, 0, None)
    if condition.headlights:
        # Headlamps: a forward cone from the ego that falls off with distance squared.
        forward = hits.directions @ np.array([1.0, 0.0, 0.0])
        cone = np.clip((forward - 0.85) / 0.15, 0, 1)
        shade = shade + 60.0 * cone / np.maximum(hits.t, 4.0) ** 2
    if condition.rain:
        wet = np.isin(classes, [C["Road"], C["SideWalk"], C["RoadLine"]])
        shade = np.where(wet, shade * 0.7, shade)
    colour = albedo * shade[:, None].astype(np.float32)
    sky = hits.primitive == SKY
    elevation = np.clip(hits.directions[:, 2], 0, 1)[:, None]
    sky_rgb = np.asarray(condition.sky_rgb, dtype=np.float32)
    colour[sky] = (sky_rgb * (1.0 - 0.3 * elevation[sky])).astype(np.float32)
    if np.isfinite(condition.fog_visibility_m):
        distance = np.nan_to_num(hits.t, posinf=1e6)
        transmission = np.exp(-3.0 * distance / condition.fog_visibility_m)
        colour = colour * transmission[:, None] + sky_rgb * (1 - transmission[:, None])
    image = colour.reshape(*shape, 3) * 255.0
    image += rng.normal(0.0, condition.rgb_noise, image.shape).astype(np.float32)
    if condition.rain:
        _rain_streaks(image, rng)
    return np.clip(image, 0, 255).astype(np.uint8)


def _rain_streaks(image: np.ndarray, rng: np.random.Generator, length: int = 9) -> None:
    """Brighten short slanted streaks in place, like drops crossing the exposure."""
    height, width = image.shape[:2]
    count = max(1, height * width // 600)
    rows = rng.integers(0, height, count)[:, None] + np.arange(length)[None, :]
    cols = rng.integers(0, width, count)[:, None] + (np.arange(length) // 4)[None, :]
    keep = (rows < height) & (cols < width)
    image[rows[keep], cols[keep]] += 35.0


def render_depth(
    hits: Hits,
    sensor_directions: np.ndarray,
    shape: tuple[int, int],
    max_range: float,
    noise_coefficient: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Render metric depth (H, W) float32: optical-axis z in metres, 0 where no return.

    Noise grows with z² as for a stereo/structured-light camera (σ = coefficient·z²).
    """
    z = np.nan_to_num(hits.t * sensor_directions[:, 2], posinf=0.0)
    valid = (hits.primitive != SKY) & (z > 0) & (z <= max_range)
    if noise_coefficient > 0:
        z = z + rng.normal(0.0, 1.0, z.shape) * noise_coefficient * z**2
    return np.where(valid, z, 0.0).astype(np.float32).reshape(shape)


def render_thermal(
    hits: Hits,
    scene: Scene,
    classes: np.ndarray,
    centers: np.ndarray,
    condition: Condition,
    sun_direction: np.ndarray,
    shape: tuple[int, int],
    rng: np.random.Generator,
) -> np.ndarray:
    """Render (h, w) uint16 centi-kelvin: warm people and engines, sun-heated road, cold sky."""
    kelvin = CLASS_TEMPERATURE[classes].astype(np.float64)
    solid = hits.primitive >= 0
    kelvin[solid] = scene.temperature[hits.primitive[solid]]
    living = classes == C["Pedestrian"]
    passive = ~living & ~np.isin(classes, VEHICLE_CLASSES)
    absorb = 1.0 - CLASS_ALBEDO[classes].mean(axis=1)
    heating = 15.0 * condition.sun * absorb * np.clip(hits.normals @ sun_direction, 0, None)
    kelvin += np.where(passive, heating + condition.temperature_offset, 0.0)
    # Engines and tyres: the front and lower part of vehicles run hot.
    vehicle = np.flatnonzero(solid & np.isin(classes, VEHICLE_CLASSES))
    if len(vehicle):
        k = hits.primitive[vehicle]
        offset = hits.points[vehicle] - centers[k]
        cos_yaw, sin_yaw = np.cos(scene.yaw[k]), np.sin(scene.yaw[k])
        local_x = (cos_yaw * offset[:, 0] + sin_yaw * offset[:, 1]) / scene.half_size[k, 0]
        local_z = offset[:, 2] / scene.half_size[k, 2]
        kelvin[vehicle] += 22.0 * np.clip((local_x - 0.4) / 0.6, 0, 1) + 8.0 * (local_z < -0.5)
    sky = hits.primitive == SKY
    kelvin[sky] = condition.sky_kelvin + 15.0 * (1 - np.clip(hits.directions[sky, 2], 0, 1))
    if np.isfinite(condition.fog_visibility_m):
        # Long-wave infrared sees ~4x further through fog than visible light.
        distance = np.nan_to_num(hits.t, posinf=1e6)
        transmission = np.exp(-0.75 * distance / condition.fog_visibility_m)
        kelvin = kelvin * transmission + 280.0 * (1 - transmission)
    kelvin += rng.normal(0.0, 0.05, kelvin.shape)  # NETD ~50 mK
    counts = np.clip(np.round(kelvin * THERMAL_COUNTS_PER_KELVIN), 0, 65535)
    return counts.astype(np.uint16).reshape(shape)


def render_lidar(
    hits: Hits,
    classes: np.ndarray,
    spec: LidarSpec,
    condition: Condition,
    rng: np.random.Generator,
    jitter_m: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (points in the LiDAR frame as ``LIDAR_DTYPE``, per-point DELIVER ids).

    Points come in firing order (azimuth column by column, ring 0 lowest within a column).
    """
    bundle = spec.rays
    order = np.arange(bundle.rows * bundle.cols).reshape(bundle.rows, bundle.cols).T.ravel()
    t = hits.t[order]
    max_range = min(spec.max_range, condition.lidar_max_range)
    valid = (hits.primitive[order] != SKY) & (t >= spec.min_range) & (t <= max_range)
    dropout = spec.dropout + condition.lidar_dropout * np.clip(np.nan_to_num(t) / max_range, 0, 1)
    if spec.dropout > 0 or condition.lidar_dropout > 0:
        valid &= rng.random(len(t)) >= dropout
    index = order[valid]
    ranges = hits.t[index]
    if spec.range_noise_m > 0:
        ranges = ranges + rng.normal(0.0, spec.range_noise_m, len(ranges))
    xyz = bundle.directions[index] * ranges[:, None]
    incidence = np.abs(np.einsum("nk,nk->n", hits.normals[index], hits.directions[index]))
    cls = classes[index]
    intensity = 255.0 * CLASS_REFLECTIVITY[cls] * (0.3 + 0.7 * incidence)
    if np.isfinite(condition.fog_visibility_m):
        intensity *= np.exp(-2.0 * ranges / condition.fog_visibility_m)
    if condition.rain:
        # A few false returns from drops close to the sensor; they carry no class.
        drops = rng.random(len(order)) < 0.002
        drop_index = order[drops]
        drop_range = rng.uniform(1.0, 6.0, len(drop_index))
        xyz = np.concatenate([xyz, bundle.directions[drop_index] * drop_range[:, None]])
        intensity = np.concatenate([intensity, rng.uniform(0, 15, len(drop_index))])
        cls = np.concatenate([cls, np.full(len(drop_index), 255, np.uint8)])
        index = np.concatenate([index, drop_index])
    if jitter_m > 0:
        xyz = xyz + rng.normal(0.0, jitter_m, xyz.shape)
    points = np.empty(len(xyz), dtype=LIDAR_DTYPE)
    points["x"], points["y"], points["z"] = xyz.T.astype(np.float32)
    points["intensity"] = np.clip(intensity, 0, 255).astype(np.float32)
    points["ring"] = (index // bundle.cols).astype(np.uint16)
    return points, cls.astype(np.uint8)
