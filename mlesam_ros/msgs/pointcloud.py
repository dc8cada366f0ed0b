"""``sensor_msgs/PointCloud2`` <-> numpy structured arrays for any field layout.

Written here because the reference parser (``sensor_msgs_py.point_cloud2``) ships only inside
a ROS install. The field list becomes a numpy structured dtype with explicit offsets and
``itemsize = point_step``, so padding between and after fields costs nothing and the buffer
is read without a Python loop.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from mlesam_ros.msgs._typestore import message_class
from mlesam_ros.msgs.image import message_bytes
from mlesam_ros.msgs.stamps import make_header
from mlesam_ros.text import quote

# sensor_msgs/PointField datatype constants.
POINTFIELD_DTYPES: dict[int, str] = {
    1: "i1",  # INT8
    2: "u1",  # UINT8
    3: "i2",  # INT16
    4: "u2",  # UINT16
    5: "i4",  # INT32
    6: "u4",  # UINT32
    7: "f4",  # FLOAT32
    8: "f8",  # FLOAT64
}
_DTYPE_TO_POINTFIELD = {np.dtype(v).newbyteorder("="): k for k, v in POINTFIELD_DTYPES.items()}
XYZ_FIELDS = ("x", "y", "z")


def _where(topic: str) -> str:
    return f"point cloud on topic {quote(topic)}" if topic else "point cloud"


def pointcloud2_dtype(
    fields: Any, point_step: int, is_bigendian: bool = False, topic: str = ""
) -> np.dtype:
    """Build the structured dtype of one point from a PointField list (duck-typed)."""
    names, formats, offsets = [], [], []
    order = ">" if is_bigendian else "<"
    for field in fields:
        name, datatype = str(field.name), int(field.datatype)
        offset, count = int(field.offset), max(int(getattr(field, "count", 1)), 1)
        if datatype not in POINTFIELD_DTYPES:
            raise ValueError(
                f"{_where(topic)}: field {quote(name)} has unknown datatype {datatype}; "
                f"PointField datatypes are 1..8"
            )
        if name in names:
            raise ValueError(f"{_where(topic)}: field {quote(name)} appears twice")
        base = np.dtype(POINTFIELD_DTYPES[datatype]).newbyteorder(order)
        if offset < 0 or offset + base.itemsize * count > point_step:
            raise ValueError(
                f"{_where(topic)}: field {quote(name)} (offset {offset}, {count} x "
                f"{base.itemsize} bytes) does not fit in point_step {point_step}"
            )
        names.append(name)
        formats.append(base if count == 1 else np.dtype((base, (count,))))
        offsets.append(offset)
    if not names:
        raise ValueError(f"{_where(topic)}: message has no fields")
    return np.dtype(
        {"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step}
    )


def pointcloud2_to_array(
    msg: Any, topic: str = "", skip_nans: bool = True, require_xyz: bool = True
) -> np.ndarray:
    """Decode a PointCloud2 into a 1-D structured array (organised clouds are flattened).

    Fields keep their names and types (native byte order). With ``skip_nans`` points whose
    x, y or z is not finite are dropped (organised clouds mark missing returns that way).
    """
    height, width = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    if point_step <= 0:
        raise ValueError(f"{_where(topic)}: point_step must be > 0, got {point_step}")
    dtype = pointcloud2_dtype(msg.fields, point_step, bool(msg.is_bigendian), topic)
    if require_xyz:
        missing = [name for name in XYZ_FIELDS if name not in dtype.names]
        if missing:
            raise ValueError(
                f"{_where(topic)}: missing field(s) {', '.join(missing)}; present: "
                f"{', '.join(quote(name) for name in dtype.names[:12])}"
                + (f", ... ({len(dtype.names)} fields)" if len(dtype.names) > 12 else "")
            )
    row_step = max(row_step, width * point_step) if height <= 1 else row_step
    if row_step < width * point_step:
        raise ValueError(
            f"{_where(topic)}: row_step {row_step} < width*point_step = {width * point_step}"
        )
    buffer = message_bytes(msg.data)
    needed = 0 if height * width == 0 else row_step * (height - 1) + width * point_step
    if buffer.size < needed:
        raise ValueError(
            f"{_where(topic)}: truncated data: {width}x{height} points with point_step "
            f"{point_step} and row_step {row_step} need {needed} bytes, got {buffer.size}"
        )
    if height * width == 0:
        points = np.zeros(0, dtype=dtype)
    else:
        points = np.ndarray(
            shape=(height, width), dtype=dtype, buffer=buffer, strides=(row_step, point_step)
        ).reshape(-1)
    if not dtype.isnative:
        points = points.astype(dtype.newbyteorder("="))
    if skip_nans and all(name in dtype.names for name in XYZ_FIELDS):
        finite = np.isfinite(points["x"]) & np.isfinite(points["y"]) & np.isfinite(points["z"])
        if not finite.all():
            points = points[finite]
    return points


def cloud_xyz(points: np.ndarray) -> np.ndarray:
    """Return ``(N, 3)`` float32 x, y, z from a structured point array (read-only).

    Most drivers lay out x, y, z as three adjacent native float32 fields: that layout gives a
    strided view of the cloud itself (no copy; the compiled projection reads it in place).
    Any other layout is gathered into a new contiguous array.
    """
    from numpy.lib.stride_tricks import as_strided

    fields = points.dtype.fields or {}
    if points.ndim == 1 and all(name in fields for name in XYZ_FIELDS):
        offset = fields["x"][1]
        adjacent = all(
            fields[name][0] == np.dtype(np.float32) and fields[name][1] == offset + 4 * axis
            for axis, name in enumerate(XYZ_FIELDS)
        )
        if adjacent:
            x = points["x"]
            return as_strided(x, shape=(x.shape[0], 3), strides=(x.strides[0], 4),
                              writeable=False)  # fmt: skip
    xyz = np.stack([points[name].astype(np.float32) for name in XYZ_FIELDS], axis=-1)
    xyz.flags.writeable = False
    return xyz


def cloud_field(points: np.ndarray, name: str) -> np.ndarray | None:
    """Return one field as float32 ``(N,)``, or ``None`` when the cloud does not have it."""
    if points.dtype.names is None or name not in points.dtype.names:
        return None
    return points[name].astype(np.float32, copy=False)


def array_to_pointcloud2(points: np.ndarray, header_or_stamp: Any, frame_id: str = "") -> Any:
    """Build a rosbags ``sensor_msgs/msg/PointCloud2`` from a structured array.

    ``points`` is ``(N,)`` (unorganised) or ``(H, W)`` (organised); field offsets and any
    padding of the dtype are kept, so the result decodes back to the same dtype.
    """
    points = np.asarray(points)
    if points.dtype.names is None:
        raise ValueError(
            "array_to_pointcloud2: needs a structured array with named fields, got dtype "
            f"{points.dtype}; build one with labelled_points() or np.zeros(n, dtype=[...])"
        )
    if points.ndim not in (1, 2):
        raise ValueError(f"array_to_pointcloud2: needs (N,) or (H, W), got {points.shape}")
    pointfield = message_class("sensor_msgs/msg/PointField")
    fields = []
    for name in points.dtype.names:
        field_dtype, offset = points.dtype.fields[name][:2]
        base, shape = field_dtype.base, field_dtype.shape
        datatype = _DTYPE_TO_POINTFIELD.get(base.newbyteorder("="))
        if datatype is None or len(shape) > 1:
            raise ValueError(
                f"array_to_pointcloud2: field '{name}' has dtype {field_dtype}, which "
                "PointField cannot express (use int8..float64 scalars or 1-D subarrays)"
            )
        count = int(shape[0]) if shape else 1
        fields.append(pointfield(name=name, offset=int(offset), datatype=datatype, count=count))
    fields.sort(key=lambda field: field.offset)
    native = points.dtype.newbyteorder("=")
    height, width = (1, points.shape[0]) if points.ndim == 1 else points.shape
    # One copy the message owns: raw bytes when the layout is already native and C-ordered
    # (a structured copy goes field by field, ~10x slower), else a converting copy.
    if points.dtype == native and points.flags.c_contiguous:
        data = points.reshape(-1).view(np.uint8).copy()
    else:
        data = np.array(points, dtype=native, order="C").reshape(-1).view(np.uint8)
    has_xyz = all(name in points.dtype.names for name in XYZ_FIELDS)
    is_dense = bool(
        not has_xyz
        or (
            np.isfinite(points["x"]).all()
            and np.isfinite(points["y"]).all()
            and np.isfinite(points["z"]).all()
        )
    )
    return message_class("sensor_msgs/msg/PointCloud2")(
        header=make_header(header_or_stamp, frame_id),
        height=height,
        width=width,
        fields=fields,
        is_bigendian=sys.byteorder == "big",
        point_step=native.itemsize,
        row_step=native.itemsize * width,
        data=data,
        is_dense=is_dense,
    )


def labelled_points(
    xyz: np.ndarray,
    labels: np.ndarray,
    intensity: np.ndarray | None = None,
    rgb: np.ndarray | None = None,
) -> np.ndarray:
    """Pack points and per-point class ids into a structured array ready to publish.

    Fields: ``x, y, z`` float32, optional ``intensity`` float32, ``label`` uint32 (the type
    of PCL's ``PointXYZL``, so PCL-based consumers read it without conversion), optional
    ``rgb``: ``0x00RRGGBB`` per point (see :func:`pack_rgb`) in a float32 field, PCL's
    ``PointXYZRGB`` convention, which rviz's RGB8 colour transformer shows.
    """
    xyz = np.asarray(xyz)
    labels = np.asarray(labels)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"labelled_points: xyz must be (N, 3), got {xyz.shape}")
    if labels.shape != (xyz.shape[0],):
        raise ValueError(
            f"labelled_points: labels must be ({xyz.shape[0]},) to match xyz, got {labels.shape}"
        )
    if intensity is not None:
        intensity = np.asarray(intensity)
        if intensity.shape != labels.shape:
            raise ValueError(
                f"labelled_points: intensity must be {labels.shape}, got {intensity.shape}"
            )
    if rgb is not None and np.shape(rgb) != labels.shape:
        raise ValueError(f"labelled_points: rgb must be {labels.shape}, got {np.shape(rgb)}")
    dtype = labelled_points_dtype(intensity is not None, rgb is not None)
    # Every field is 4 bytes: fill an (N, fields) float32 table (x, y, z as one block), then
    # view it as the structured type, instead of one strided write per field.
    table = np.empty((xyz.shape[0], len(dtype.names)), dtype=np.float32)
    table[:, :3] = xyz
    if intensity is not None:
        table[:, 3] = intensity
    columns = table.view(np.uint32)
    columns[:, dtype.names.index("label")] = labels
    if rgb is not None:
        columns[:, -1] = rgb
    return table.view(dtype).reshape(-1)


def labelled_points_dtype(with_intensity: bool, with_rgb: bool = False) -> np.dtype:
    """Return the packed point of :func:`labelled_points`: x, y, z[, intensity], label[, rgb]."""
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if with_intensity:
        fields.append(("intensity", "<f4"))
    fields.append(("label", "<u4"))
    if with_rgb:
        fields.append(("rgb", "<f4"))  # the bits of 0x00RRGGBB, as PCL and rviz read them
    return np.dtype(fields).newbyteorder("=")


def pack_rgb(colours: np.ndarray) -> np.ndarray:
    """``(..., 3)`` uint8 colours → ``0x00RRGGBB`` uint32, the ``rgb`` field's bits."""
    colours = np.asarray(colours, dtype=np.uint32)
    return (colours[..., 0] << 16) | (colours[..., 1] << 8) | colours[..., 2]
