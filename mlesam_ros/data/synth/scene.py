"""Procedural street scenes: a ground plane split into surface classes plus solid primitives.

The world frame follows REP 103 (x forward along the street, y left, z up, ground at z = 0).
A scene is a straight street: road with lane markings, sidewalks, a verge of terrain, dirt and
water, then buildings, walls and fences; along it poles with signs and traffic lights, trees,
parked and moving vehicles, pedestrians, two-wheelers, street furniture, guard rails, a level
crossing and a bridge. Layout repeats in blocks so every stretch of road shows every DELIVER
class. Everything is arrays so the ray caster stays vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlesam_ros.data.classes import DELIVER_CLASSES

C = {name: index for index, name in enumerate(DELIVER_CLASSES)}
"""DELIVER class name → id, used for readable layout code."""

BOX, CYLINDER, SPHERE = 0, 1, 2

ROAD_HALF_WIDTH = 4.0
SIDEWALK_OUTER = 7.0
VERGE_OUTER = 11.0
BLOCK_LENGTH = 60.0
"""Every BLOCK_LENGTH metres the layout places one of each object class (see module doc)."""

# Per-class look: RGB albedo (0..1), temperature (K, before sun/night offsets), LiDAR
# reflectivity (0..1). Values are plausible, not measured; they only need to make classes
# separable the way real sensors do (warm people and engines, retro-reflective signs).
_MATERIALS: dict[str, tuple[tuple[float, float, float], float, float]] = {
    "Building": ((0.55, 0.50, 0.45), 291.0, 0.25),
    "Fence": ((0.45, 0.35, 0.25), 289.0, 0.30),
    "Other": ((0.60, 0.30, 0.55), 292.0, 0.30),
    "Pedestrian": ((0.50, 0.30, 0.25), 305.0, 0.20),
    "Pole": ((0.50, 0.50, 0.52), 290.0, 0.40),
    "RoadLine": ((0.92, 0.92, 0.88), 293.0, 0.65),
    "Road": ((0.28, 0.28, 0.30), 295.0, 0.10),
    "SideWalk": ((0.62, 0.60, 0.58), 293.0, 0.20),
    "Vegetation": ((0.22, 0.45, 0.15), 287.0, 0.35),
    "Cars": ((0.20, 0.25, 0.60), 300.0, 0.30),
    "Wall": ((0.65, 0.62, 0.55), 290.0, 0.25),
    "TrafficSign": ((0.90, 0.85, 0.10), 289.0, 0.95),
    "Sky": ((0.55, 0.70, 0.95), 240.0, 0.0),
    "Ground": ((0.45, 0.35, 0.22), 291.0, 0.15),
    "Bridge": ((0.58, 0.52, 0.50), 289.0, 0.25),
    "RailTrack": ((0.40, 0.33, 0.28), 294.0, 0.20),
    "GroundRail": ((0.72, 0.72, 0.75), 290.0, 0.60),
    "TrafficLight": ((0.15, 0.15, 0.15), 296.0, 0.50),
    "Static": ((0.35, 0.45, 0.40), 291.0, 0.30),
    "Dynamic": ((0.75, 0.45, 0.20), 292.0, 0.30),
    "Water": ((0.15, 0.25, 0.35), 285.0, 0.02),
    "Terrain": ((0.40, 0.52, 0.25), 290.0, 0.20),
    "TwoWheeler": ((0.15, 0.15, 0.18), 303.0, 0.30),
    "Bus": ((0.80, 0.70, 0.15), 302.0, 0.30),
    "Truck": ((0.65, 0.65, 0.68), 302.0, 0.30),
}
CLASS_ALBEDO = np.array([_MATERIALS[n][0] for n in DELIVER_CLASSES], dtype=np.float32)
CLASS_TEMPERATURE = np.array([_MATERIALS[n][1] for n in DELIVER_CLASSES], dtype=np.float32)
CLASS_REFLECTIVITY = np.array([_MATERIALS[n][2] for n in DELIVER_CLASSES], dtype=np.float32)
VEHICLE_CLASSES = np.array([C["Cars"], C["Truck"], C["Bus"], C["TwoWheeler"]])


@dataclass(eq=False)
class Scene:
    """Solid primitives of one street (K of them) plus the ground layout parameters.

    Shapes are yaw-rotated boxes, vertical cylinders and spheres: ``center`` (K, 3) at time 0,
    ``half_size`` (K, 3) (box half extents; cylinder radius, radius, half height; sphere
    radius), ``yaw`` (K,) in rad, ``velocity`` (K, 2) in m/s on the ground plane, ``class_id``
    (K,), ``albedo`` (K, 3), ``temperature`` (K,) and ``reflectivity`` (K,).
    """

    kind: np.ndarray
    center: np.ndarray
    half_size: np.ndarray
    yaw: np.ndarray
    velocity: np.ndarray
    class_id: np.ndarray
    albedo: np.ndarray
    temperature: np.ndarray
    reflectivity: np.ndarray
    rail_crossings: np.ndarray
    """(R,) x of the start of each 3 m wide level crossing (RailTrack ground)."""
    verge_patches: np.ndarray
    """(P, 5) rows of (x0, x1, side ±1, class id, unused) marking Water/Ground verge areas."""

    def __len__(self) -> int:
        """Return the number of solid primitives."""
        return int(self.kind.shape[0])

    def centers_at(self, time_s: float) -> np.ndarray:
        """Return primitive centres (K, 3) at ``time_s``; movers advance along their velocity."""
        centers = self.center.copy()
        centers[:, :2] += self.velocity * float(time_s)
        return centers

    def window(self, x_min: float, x_max: float, time_s: float = 0.0) -> np.ndarray:
        """Return indices of primitives whose centre lies in [x_min, x_max] at ``time_s``."""
        x = self.centers_at(time_s)[:, 0]
        reach = np.linalg.norm(self.half_size, axis=1)
        return np.flatnonzero((x + reach >= x_min) & (x - reach <= x_max))

    def ground_classes(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Classify ground points by position: road, lane marks, sidewalk, verge surfaces.

        Analytic 2-D tests (no texture lookups) so labels are exact at any resolution.
        """
        ay = np.abs(y)
        out = np.full(x.shape, C["Terrain"], dtype=np.uint8)
        out[ay < SIDEWALK_OUTER] = C["SideWalk"]
        road = ay < ROAD_HALF_WIDTH
        out[road] = C["Road"]
        centre_dash = (ay < 0.08) & (np.mod(x, 6.0) < 3.0)
        edge_line = np.abs(ay - (ROAD_HALF_WIDTH - 0.25)) < 0.08
        out[road & (centre_dash | edge_line)] = C["RoadLine"]
        for x0 in self.rail_crossings:
            out[(x >= x0) & (x < x0 + 3.0) & (ay < SIDEWALK_OUTER)] = C["RailTrack"]
        verge = ay >= SIDEWALK_OUTER
        for x0, x1, side, class_id, _ in self.verge_patches:
            inside = verge & (x >= x0) & (x < x1) & (np.sign(y) == side)
            out[inside] = int(class_id)
        return out


class _Builder:
    """Collects primitives while the layout code places them."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.rows: list[tuple] = []

    def add(
        self,
        kind: int,
        class_name: str,
        center: tuple[float, float, float],
        half_size: tuple[float, float, float],
        yaw: float = 0.0,
        velocity: tuple[float, float] = (0.0, 0.0),
        tint: float = 0.12,
    ) -> None:
        class_id = C[class_name]
        albedo = CLASS_ALBEDO[class_id] * (1.0 + tint * self.rng.uniform(-1, 1, 3))
        temperature = CLASS_TEMPERATURE[class_id] + self.rng.uniform(-1.5, 1.5)
        self.rows.append(
            (kind, center, half_size, yaw, velocity, class_id, np.clip(albedo, 0, 1),
             temperature, CLASS_REFLECTIVITY[class_id])
        )  # fmt: skip

    def scene(self, rail_crossings: list[float], verge_patches: list[tuple]) -> Scene:
        cols = list(zip(*self.rows, strict=True))
        return Scene(
            kind=np.array(cols[0], dtype=np.int8),
            center=np.array(cols[1], dtype=np.float64),
            half_size=np.array(cols[2], dtype=np.float64),
            yaw=np.array(cols[3], dtype=np.float64),
            velocity=np.array(cols[4], dtype=np.float64),
            class_id=np.array(cols[5], dtype=np.uint8),
            albedo=np.array(cols[6], dtype=np.float32),
            temperature=np.array(cols[7], dtype=np.float32),
            reflectivity=np.array(cols[8], dtype=np.float32),
            rail_crossings=np.array(rail_crossings, dtype=np.float64),
            verge_patches=np.array(verge_patches, dtype=np.float64).reshape(-1, 5),
        )


_CAR_COLOURS = np.array(
    [[0.6, 0.1, 0.1], [0.1, 0.2, 0.6], [0.8, 0.8, 0.8], [0.1, 0.1, 0.1], [0.3, 0.35, 0.4]]
)


def make_street(seed: int, x_start: float = -40.0, x_end: float = 300.0) -> Scene:
    """Lay out a street from ``x_start`` to ``x_end`` (m), deterministic under ``seed``."""
    if x_end <= x_start:
        raise ValueError(f"make_street: x_end ({x_end}) must exceed x_start ({x_start})")
    b = _Builder(np.random.default_rng([seed, 0]))
    rails: list[float] = []
    patches: list[tuple] = []

    # Building frontage on both sides, with walls or fences filling some gaps.
    for side_index, side in enumerate((-1.0, 1.0)):
        # Separate random streams per side and per block: a longer street is the same street
        # extended, so drives of any length agree on the part they share.
        b.rng = rng = np.random.default_rng([seed, 1, side_index])
        u = rng.uniform
        x = x_start
        while x < x_end:
            length = u(8.0, 22.0)
            if u() < 0.8:
                depth, height = u(6.0, 12.0), u(6.0, 25.0)
                front = VERGE_OUTER + u(0.0, 3.0)
                b.add(BOX, "Building", (x + length / 2, side * (front + depth / 2), height / 2),
                      (length / 2, depth / 2, height / 2), tint=0.25)  # fmt: skip
            else:
                name, h, t = ("Wall", u(1.5, 3.0), 0.2) if u() < 0.5 else ("Fence", 1.6, 0.04)
                b.add(BOX, name, (x + length / 2, side * (VERGE_OUTER - 0.3), h / 2),
                      (length / 2, t, h / 2))  # fmt: skip
            x += length + u(0.5, 3.0)

    block = np.floor(x_start / BLOCK_LENGTH) * BLOCK_LENGTH
    while block < x_end:
        b.rng = rng = np.random.default_rng([seed, 2, int(block // BLOCK_LENGTH) + 1_000_000])
        u = rng.uniform
        bx = block + 10.0  # objects sit 10..60 m into each block

        def along(lo: float, hi: float, bx: float = bx, u=u) -> float:
            return bx + u(lo, hi)

        # Street lights (poles), signs and traffic lights on the sidewalk edge.
        for k in range(2):
            side = (-1.0, 1.0)[k]
            px = along(0, 40)
            b.add(CYLINDER, "Pole", (px, side * 4.5, 3.0), (0.12, 0.12, 3.0))
        sx, sside = along(0, 40), rng.choice([-1.0, 1.0])
        b.add(CYLINDER, "Pole", (sx, sside * 4.6, 1.3), (0.05, 0.05, 1.3))
        b.add(BOX, "TrafficSign", (sx, sside * 4.6, 2.9), (0.05, 0.45, 0.4), tint=0.05)
        lx = along(0, 40)
        b.add(CYLINDER, "Pole", (lx, -4.6, 2.0), (0.08, 0.08, 2.0))
        b.add(BOX, "TrafficLight", (lx, -4.6, 4.4), (0.2, 0.2, 0.5), tint=0.05)
        # Trees in the verge: trunk (cylinder) and crown (sphere), both Vegetation.
        for _ in range(3):
            tx, side = along(0, 48), rng.choice([-1.0, 1.0])
            ty = side * u(7.6, 9.5)
            h = u(2.0, 3.5)
            b.add(CYLINDER, "Vegetation", (tx, ty, h / 2), (0.2, 0.2, h / 2))
            r = u(1.4, 2.4)
            b.add(SPHERE, "Vegetation", (tx, ty, h + r * 0.8), (r, r, r))
        b.add(BOX, "Vegetation", (along(0, 40), rng.choice([-1.0, 1.0]) * 7.8, 0.6),
              (u(2, 5), 0.5, 0.6))  # hedge  # fmt: skip
        # Parked cars on the right edge; moving traffic in both lanes.
        for _ in range(2):
            cx = along(0, 48)
            b.add(BOX, "Cars", (cx, -3.1, 0.75), (2.2, 0.9, 0.75), yaw=u(-0.05, 0.05))
            b.rows[-1] = (*b.rows[-1][:6], _CAR_COLOURS[rng.integers(5)], *b.rows[-1][7:])
        b.add(BOX, "Cars", (along(10, 45), 2.0, 0.75), (2.2, 0.9, 0.75), yaw=np.pi,
              velocity=(-u(4, 9), 0.0))  # fmt: skip
        b.add(BOX, "Truck", (along(5, 45), 2.0, 1.6), (3.5, 1.2, 1.6), yaw=np.pi,
              velocity=(-u(3, 7), 0.0))  # fmt: skip
        b.add(BOX, "Bus", (along(5, 45), 2.0, 1.5), (6.0, 1.25, 1.5), yaw=np.pi,
              velocity=(-u(2, 5), 0.0))  # fmt: skip
        # Pedestrians on the sidewalks (walking along it), two-wheelers by the curb.
        for _ in range(3):
            side = rng.choice([-1.0, 1.0])
            speed = u(-1.5, 1.5)
            b.add(CYLINDER, "Pedestrian", (along(0, 48), side * u(4.8, 6.5), 0.87),
                  (0.25, 0.25, 0.87), velocity=(speed, 0.0))  # fmt: skip
        for side in (-1.0, 1.0):  # bicycles and scooters parked at the kerb
            b.add(BOX, "TwoWheeler", (along(0, 45), side * 4.6, 0.55), (0.9, 0.3, 0.55),
                  yaw=u(-0.3, 0.3))  # fmt: skip
        # Street furniture: static (bins, benches), dynamic (carts), other (kiosk).
        b.add(BOX, "Static", (along(0, 45), rng.choice([-1, 1]) * 6.3, 0.5), (0.6, 0.3, 0.5))
        b.add(BOX, "Dynamic", (along(0, 45), rng.choice([-1, 1]) * 5.5, 0.45), (0.5, 0.4, 0.45))
        b.add(BOX, "Other", (along(0, 45), rng.choice([-1, 1]) * 6.2, 1.2), (1.0, 0.7, 1.2))
        # A low garden wall at the back of the sidewalk, a guard rail on the left road edge.
        b.add(BOX, "Wall", (along(0, 45), rng.choice([-1, 1]) * 7.3, 0.6), (u(3, 6), 0.2, 0.6))
        gx = along(0, 30)
        b.add(BOX, "GroundRail", (gx + 6, 4.15, 0.4), (6.0, 0.06, 0.4), tint=0.02)
        # Verge patches of water and bare ground; a level crossing; a bridge overhead.
        patches.append((along(0, 10), along(25, 40), -1.0, C["Water"], 0.0))
        patches.append((along(0, 10), along(25, 40), 1.0, C["Ground"], 0.0))
        rails.append(along(15, 30))
        bridge_x = along(35, 45)
        b.add(BOX, "Bridge", (bridge_x, 0.0, 6.5), (2.0, 13.0, 0.6), tint=0.05)
        for side in (-1.0, 1.0):
            b.add(BOX, "Bridge", (bridge_x, side * 8.5, 3.0), (0.6, 0.6, 3.0), tint=0.05)
        block += BLOCK_LENGTH

    return b.scene(rails, patches)
