"""Rigid transforms as 4x4 numpy matrices, and quaternion <-> rotation matrix.

Naming: ``T_a_from_b`` maps points in frame ``b`` into frame ``a`` (``p_a = T_a_from_b @ p_b``),
which is tf2's ``lookup_transform(target=a, source=b)``. Quaternions are ``(x, y, z, w)`` as in
ROS messages.
"""

from __future__ import annotations

import numpy as np


def quaternion_to_matrix(quaternion_xyzw: np.ndarray) -> np.ndarray:
    """Return the 3x3 rotation of a quaternion ``(x, y, z, w)``; it is normalised first."""
    q = np.asarray(quaternion_xyzw, dtype=np.float64)
    if q.shape != (4,):
        raise ValueError(f"quaternion: expected (x, y, z, w), got shape {q.shape}")
    norm = np.linalg.norm(q)
    if not np.isfinite(norm) or norm < 1e-12:
        raise ValueError(f"quaternion: {q.tolist()} has zero or non-finite norm")
    x, y, z, w = q / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """Return the unit quaternion ``(x, y, z, w)`` with ``w >= 0`` of a 3x3 rotation."""
    R = np.asarray(rotation, dtype=np.float64)[:3, :3]
    # Shepperd's method: branch on the largest diagonal term for numerical stability.
    trace = np.trace(R)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, s / 4]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [s / 4, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s, (R[2, 1] - R[1, 2]) / s]
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 1] + R[1, 0]) / s, s / 4, (R[1, 2] + R[2, 1]) / s, (R[0, 2] - R[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, s / 4, (R[1, 0] - R[0, 1]) / s]
    quaternion = np.asarray(q)
    quaternion /= np.linalg.norm(quaternion)
    return -quaternion if quaternion[3] < 0 else quaternion


def make_transform(rotation: np.ndarray | None = None, translation=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Build a 4x4 transform from a 3x3 rotation (or quaternion xyzw) and a translation."""
    T = np.eye(4)
    if rotation is not None:
        rotation = np.asarray(rotation, dtype=np.float64)
        T[:3, :3] = quaternion_to_matrix(rotation) if rotation.shape == (4,) else rotation
    T[:3, 3] = np.asarray(translation, dtype=np.float64).reshape(3)
    return T


_EYE3 = np.eye(3)
_LAST_ROW = np.array([0.0, 0.0, 0.0, 1.0])


def allclose(a: np.ndarray, b: np.ndarray, atol: float = 1e-8, rtol: float = 1e-5) -> bool:
    """``np.allclose`` for small finite arrays, without its ~0.1 ms of generic overhead.

    The frame path compares transforms and intrinsics several times per frame.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return bool((np.abs(a - b) <= atol + rtol * np.abs(b)).all())


def check_transform(transform: np.ndarray, name: str = "transform") -> np.ndarray:
    """Validate a 4x4 rigid transform (finite, orthonormal rotation) and return it as float64."""
    T = np.asarray(transform, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"{name}: expected a 4x4 matrix, got shape {T.shape}")
    if not np.isfinite(T).all():
        raise ValueError(f"{name}: has NaN or inf entries; fix the extrinsic (tf or config)")
    R = T[:3, :3]
    # det(R) as the triple product: np.linalg.det costs more than the rest of the check.
    if not allclose(R @ R.T, _EYE3, atol=1e-5) or float(np.dot(np.cross(R[0], R[1]), R[2])) < 0:
        raise ValueError(f"{name}: the 3x3 block is not a rotation (R @ R.T != I or det < 0)")
    if not allclose(T[3], _LAST_ROW):
        raise ValueError(f"{name}: last row must be [0, 0, 0, 1], got {T[3].tolist()}")
    return T


def invert_transform(transform: np.ndarray) -> np.ndarray:
    """Invert a rigid 4x4 transform without a general matrix inverse."""
    T = np.asarray(transform, dtype=np.float64)
    inverse = np.eye(4)
    inverse[:3, :3] = T[:3, :3].T
    inverse[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return inverse


def transform_points(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to ``(N, 3)`` points; returns float64 ``(N, 3)``."""
    T = np.asarray(transform, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    return points @ T[:3, :3].T + T[:3, 3]
