"""Vectorised ray casting of a ``Scene``: nearest hit per ray among primitives and the ground.

Written by hand because no installed library ray-casts analytic primitives on the CPU with
per-ray class ids; numpy keeps it dependency-free and fast enough (see
``benchmarks/bench_synthetic.py``). Culling is two-level: each primitive's bounding sphere is
tested against the bounding cones of ray tiles (one small matrix product for all pairs), and
only the rays of overlapping tiles get the exact slab test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlesam_ros.data.synth.scene import BOX, SPHERE, Scene
from mlesam_ros.data.synth.sensors import RayBundle

GROUND = -1
SKY = -2
_CORNER_SIGNS = np.array(
    [[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64
)


@dataclass
class Hits:
    """Nearest intersection of every ray, in the world frame.

    ``t`` is the distance (inf for sky), ``primitive`` the scene index or ``GROUND``/``SKY``,
    ``points`` the hit points and ``normals`` the unit surface normals.
    """

    t: np.ndarray
    primitive: np.ndarray
    points: np.ndarray
    normals: np.ndarray
    directions: np.ndarray
    origin: np.ndarray


def _intersect(
    kind: int, origin: np.ndarray, dirs: np.ndarray, half: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return entry distance (inf for a miss) and local-frame normals for one primitive.

    ``origin`` (3,) and ``dirs`` (n, 3) are already in the primitive's local frame (centre at
    0, yaw removed). Boxes and cylinders use the slab method (intersection of intervals), so
    cylinder caps come out of the same code as box faces.
    """
    n = len(dirs)
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == SPHERE:
            b = dirs @ origin
            c = origin @ origin - half[0] ** 2
            disc = b * b - c
            t = -b - np.sqrt(np.maximum(disc, 0.0))
            t = np.where((disc >= 0) & (t > 1e-6), t, np.inf)
            normals = (origin + t[:, None] * dirs) / half[0]
            return t, normals
        inv = 1.0 / dirs
        if kind == BOX:
            t1 = (-half - origin) * inv
            t2 = (half - origin) * inv
            t_lo = np.minimum(t1, t2)
            t_hi = np.maximum(t1, t2)
            axis = np.argmax(t_lo, axis=1)
            t_near = t_lo[np.arange(n), axis]
            t_far = t_hi.min(axis=1)
            normals = np.zeros((n, 3))
            normals[np.arange(n), axis] = -np.sign(dirs[np.arange(n), axis])
        else:  # CYLINDER: vertical axis, radius half[0], half height half[2]
            a = dirs[:, 0] ** 2 + dirs[:, 1] ** 2
            b = dirs[:, 0] * origin[0] + dirs[:, 1] * origin[1]
            c = origin[0] ** 2 + origin[1] ** 2 - half[0] ** 2
            disc = b * b - a * c
            root = np.sqrt(np.maximum(disc, 0.0))
            tc0 = np.where(disc >= 0, (-b - root) / a, np.inf)
            tc1 = np.where(disc >= 0, (-b + root) / a, -np.inf)
            vertical = a < 1e-12  # parallel to the axis: inside the disc or a miss
            tc0 = np.where(vertical, -np.inf if c <= 0 else np.inf, tc0)
            tc1 = np.where(vertical, np.inf if c <= 0 else -np.inf, tc1)
            tz1 = (-half[2] - origin[2]) * inv[:, 2]
            tz2 = (half[2] - origin[2]) * inv[:, 2]
            tz_lo, tz_hi = np.minimum(tz1, tz2), np.maximum(tz1, tz2)
            cap = tz_lo > tc0
            t_near = np.maximum(tc0, tz_lo)
            t_far = np.minimum(tc1, tz_hi)
            hit_xy = origin[:2] + t_near[:, None] * dirs[:, :2]
            normals = np.zeros((n, 3))
            normals[:, :2] = hit_xy / half[0]
            normals[cap] = 0.0
            normals[cap, 2] = -np.sign(dirs[cap, 2])
        t = np.where((t_near <= t_far) & (t_near > 1e-6), t_near, np.inf)
    return t, normals


def cast(
    scene: Scene,
    centers: np.ndarray,
    bundle: RayBundle,
    world_from_sensor: np.ndarray,
    max_distance: float = 1000.0,
    subset: np.ndarray | None = None,
) -> Hits:
    """Cast every ray of ``bundle`` from a sensor at ``world_from_sensor`` into ``scene``.

    ``centers`` are the primitive centres at the render time (``scene.centers_at``);
    ``subset`` optionally limits the test to those primitive indices (e.g. a window of the
    street around the sensor).
    """
    R = world_from_sensor[:3, :3]
    origin = world_from_sensor[:3, 3].astype(np.float64)
    dirs = bundle.directions @ R.T
    n_rays = len(dirs)
    best_t = np.full(n_rays, np.inf)
    best_prim = np.full(n_rays, SKY, dtype=np.int32)
    normals = np.zeros((n_rays, 3))

    index = np.arange(len(scene)) if subset is None else np.asarray(subset, dtype=np.int64)
    if len(index):
        # Each primitive's bounding cone (apex at the sensor) vs each tile's cone: they can
        # only share rays if angle(axes) < sum of half-angles. Boxes and cylinders use the
        # cone through their 8 corners (the directions to a convex body lie inside the cone
        # spanned by its corners), which is much tighter than a bounding sphere for long
        # buildings; spheres use their exact cone. A sensor inside a body sees all tiles.
        half_size = scene.half_size[index]
        sphere = scene.kind[index] == SPHERE
        to_center = centers[index] - origin
        distance = np.linalg.norm(to_center, axis=1)
        axis = to_center / np.maximum(distance, 1e-9)[:, None]
        radius = np.where(sphere, half_size[:, 0], np.linalg.norm(half_size, axis=1))
        inside = distance <= radius
        sin_a = np.clip(radius / np.maximum(distance, 1e-9), 0.0, 1.0)
        cos_a = np.sqrt(1.0 - sin_a**2)
        boxy = ~sphere & ~inside
        if boxy.any():
            yaw = scene.yaw[index[boxy]]
            c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
            hx, hy, hz = (half_size[boxy, i][:, None] * _CORNER_SIGNS[:, i] for i in range(3))
            corners = np.stack([c * hx - s * hy, s * hx + c * hy, hz], axis=-1)
            corners += to_center[boxy, None, :]
            corners /= np.linalg.norm(corners, axis=-1, keepdims=True)
            corner_axis = corners.mean(axis=1)
            corner_axis /= np.linalg.norm(corner_axis, axis=1, keepdims=True)
            cos_corner = np.einsum("kcd,kd->kc", corners, corner_axis).min(axis=1) - 1e-9
            wide = cos_corner <= 0.0  # cone of 90° or more: not convex, test every tile
            axis[boxy] = corner_axis
            cos_a[boxy] = np.where(wide, -1.0, np.clip(cos_corner, -1.0, 1.0))
            sin_a[boxy] = np.where(wide, 0.0, np.sqrt(1.0 - cos_a[boxy] ** 2))
            inside[np.flatnonzero(boxy)[wide]] = True
        tile_axis = bundle.tile_axis @ R.T
        cos_angle = tile_axis @ axis.T
        # cos(tile + sphere) = cos*cos - sin*sin; a sensor inside the sphere sees all tiles.
        threshold = np.outer(bundle.tile_cos, cos_a) - np.outer(bundle.tile_sin, sin_a)
        overlap = (cos_angle >= threshold) | inside[None, :]
        candidates = (distance - radius < max_distance) & overlap.any(axis=0)
        for j in np.flatnonzero(candidates):
            k = index[j]
            rays = bundle.tile_rays[np.flatnonzero(overlap[:, j])].ravel()
            c, s = np.cos(scene.yaw[k]), np.sin(scene.yaw[k])
            to_local = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
            local_origin = to_local @ (origin - centers[k])
            t, local_normals = _intersect(
                int(scene.kind[k]), local_origin, dirs[rays] @ to_local.T, scene.half_size[k]
            )
            closer = t < best_t[rays]
            winners = rays[closer]
            best_t[winners] = t[closer]
            best_prim[winners] = k
            normals[winners] = local_normals[closer] @ to_local  # back to world

    with np.errstate(divide="ignore", invalid="ignore"):
        t_ground = np.where(dirs[:, 2] < -1e-9, -origin[2] / dirs[:, 2], np.inf)
    ground = (t_ground < best_t) & (t_ground < max_distance)
    best_t[ground] = t_ground[ground]
    best_prim[ground] = GROUND
    normals[ground] = (0.0, 0.0, 1.0)
    sky = ~np.isfinite(best_t) | (best_t >= max_distance)
    best_t[sky] = np.inf
    best_prim[sky] = SKY
    points = origin + np.where(sky[:, None], 0.0, best_t[:, None]) * dirs
    return Hits(best_t, best_prim, points, normals, dirs, origin)
