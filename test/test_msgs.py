"""ROS message <-> numpy conversion with real rosbags message objects (and duck-typed ones)."""

from __future__ import annotations

import array
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from mlesam_ros import msgs
from mlesam_ros.geometry import CameraModel, make_transform, quaternion_to_matrix

RNG = np.random.default_rng(5)
ENCODING_ARRAYS = {
    "rgb8": lambda: RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8),
    "bgr8": lambda: RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8),
    "rgba8": lambda: RNG.integers(0, 256, (5, 7, 4), dtype=np.uint8),
    "bgra8": lambda: RNG.integers(0, 256, (5, 7, 4), dtype=np.uint8),
    "mono8": lambda: RNG.integers(0, 256, (5, 7), dtype=np.uint8),
    "mono16": lambda: RNG.integers(0, 65536, (5, 7), dtype=np.uint16),
    "16UC1": lambda: RNG.integers(0, 65536, (5, 7), dtype=np.uint16),
    "32FC1": lambda: RNG.uniform(0.1, 80.0, (5, 7)).astype(np.float32),
}


def _image_msg(array_: np.ndarray, encoding: str, step: int, data: np.ndarray, bigendian=False):
    height, width = array_.shape[:2]
    return msgs.message_class("sensor_msgs/msg/Image")(
        header=msgs.make_header(1, "cam"),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(bigendian),
        step=step,
        data=data,
    )


def _padded(array_: np.ndarray, pad: int, bigendian: bool = False) -> tuple[int, np.ndarray]:
    """Rows of ``array_`` followed by ``pad`` garbage bytes each, in the given byte order."""
    height = array_.shape[0]
    stored = array_.astype(array_.dtype.newbyteorder(">" if bigendian else "<"))
    rows = stored.reshape(height, -1).view(np.uint8).reshape(height, -1)
    garbage = RNG.integers(0, 256, (height, pad), dtype=np.uint8)
    padded = np.concatenate([rows, garbage], axis=1)
    return padded.shape[1], padded.reshape(-1)


@pytest.mark.parametrize("encoding", list(ENCODING_ARRAYS))
def test_image_round_trip_every_encoding(encoding: str) -> None:
    original = ENCODING_ARRAYS[encoding]()
    msg = msgs.numpy_to_image(original, encoding, 1_500_000_123, "camera")
    assert msg.__msgtype__ == "sensor_msgs/msg/Image"
    assert msg.header.stamp.sec == 1 and msg.header.stamp.nanosec == 500_000_123
    assert msg.header.frame_id == "camera"
    assert msg.step == original[0].nbytes
    decoded = msgs.image_to_numpy(msg, "/cam/image")
    assert decoded.dtype == original.dtype
    np.testing.assert_array_equal(decoded, original)
    # Unpadded native-order data is viewed, not copied.
    assert np.shares_memory(decoded, msg.data)
    # The message is a valid rosbags message: it survives CDR serialisation.
    store = msgs.typestore()
    raw = store.serialize_cdr(msg, msg.__msgtype__)
    again = store.deserialize_cdr(raw, msg.__msgtype__)
    np.testing.assert_array_equal(msgs.image_to_numpy(again), original)


@pytest.mark.parametrize("encoding", list(ENCODING_ARRAYS))
@pytest.mark.parametrize("bigendian", [False, True])
def test_image_step_padding_and_byte_order(encoding: str, bigendian: bool) -> None:
    original = ENCODING_ARRAYS[encoding]()
    step, data = _padded(original, pad=5, bigendian=bigendian)
    msg = _image_msg(original, encoding, step, data, bigendian)
    decoded = msgs.image_to_numpy(msg, "/cam")
    assert decoded.dtype.isnative
    np.testing.assert_array_equal(decoded, original)


@pytest.mark.parametrize("encoding", list(ENCODING_ARRAYS))
def test_image_matches_rosbags_image_where_it_applies(encoding: str) -> None:
    rosbags_image = pytest.importorskip("rosbags.image", reason="rosbags-image not installed")
    original = ENCODING_ARRAYS[encoding]()
    msg = msgs.numpy_to_image(original, encoding, 0)
    np.testing.assert_array_equal(msgs.image_to_numpy(msg), rosbags_image.message_to_cvimage(msg))


def test_image_accepts_duck_typed_rclpy_style_messages() -> None:
    original = ENCODING_ARRAYS["16UC1"]()
    step, data = _padded(original, pad=4)
    for payload in (data.tobytes(), array.array("B", data.tobytes()), list(data)):
        msg = SimpleNamespace(
            height=5, width=7, encoding="16UC1", is_bigendian=0, step=step, data=payload
        )
        np.testing.assert_array_equal(msgs.image_to_numpy(msg), original)


def test_image_to_rgb8_reorders_channels() -> None:
    rgb = ENCODING_ARRAYS["rgb8"]()
    rgba = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 7, np.uint8)], axis=2)
    cases = {
        "rgb8": rgb,
        "bgr8": rgb[:, :, ::-1],
        "rgba8": rgba,
        "bgra8": np.concatenate([rgb[:, :, ::-1], rgba[:, :, 3:]], axis=2),
    }
    for encoding, stored in cases.items():
        result = msgs.image_to_rgb8(msgs.numpy_to_image(stored.copy(), encoding, 0))
        np.testing.assert_array_equal(result, rgb, err_msg=encoding)
    mono = ENCODING_ARRAYS["mono8"]()
    result = msgs.image_to_rgb8(msgs.numpy_to_image(mono, "mono8", 0))
    assert result.shape == (5, 7, 3)
    np.testing.assert_array_equal(result[:, :, 1], mono)
    mono16 = np.array([[0, 255, 256, 65535]], dtype=np.uint16)
    result = msgs.image_to_rgb8(msgs.numpy_to_image(mono16, "mono16", 0))
    np.testing.assert_array_equal(result[0, :, 0], [0, 0, 1, 255])


def test_depth_units_and_invalid_pixels() -> None:
    millimetres = np.array([[0, 1000, 2500], [65535, 1, 40000]], dtype=np.uint16)
    depth = msgs.image_to_depth_m(msgs.numpy_to_image(millimetres, "16UC1", 0))
    assert depth.dtype == np.float32
    assert np.isnan(depth[0, 0])
    np.testing.assert_allclose(depth[0, 1:], [1.0, 2.5], rtol=1e-6)
    np.testing.assert_allclose(depth[1], [65.535, 0.001, 40.0], rtol=1e-6)

    metres = np.array([[np.nan, 1.25, np.inf, 0.0, -1.0, 7.0]], dtype=np.float32)
    depth = msgs.image_to_depth_m(msgs.numpy_to_image(metres, "32FC1", 0))
    assert np.isnan(depth[0, [0, 2, 3, 4]]).all()
    np.testing.assert_array_equal(depth[0, [1, 5]], [1.25, 7.0])
    with pytest.raises(ValueError, match=r"'/cam'.*16UC1 \(mm\) or 32FC1"):
        msgs.image_to_depth_m(msgs.numpy_to_image(ENCODING_ARRAYS["rgb8"](), "rgb8", 0), "/cam")


def test_malformed_images_give_clear_errors() -> None:
    original = ENCODING_ARRAYS["rgb8"]()
    msg = msgs.numpy_to_image(original, "rgb8", 0)
    msg.encoding = "yuv422"
    with pytest.raises(ValueError, match=r"'/front/image'.*unsupported encoding 'yuv422'.*rgb8"):
        msgs.image_to_numpy(msg, "/front/image")

    msg = msgs.numpy_to_image(original, "rgb8", 0)
    msg.data = msg.data[:-10]
    with pytest.raises(
        ValueError, match=r"'/front/image'.*truncated rgb8.*needs 105 bytes, got 95"
    ):
        msgs.image_to_numpy(msg, "/front/image")

    msg = msgs.numpy_to_image(original, "rgb8", 0)
    msg.step = 20
    with pytest.raises(ValueError, match=r"step 20 is smaller than width\*bytes_per_pixel = 21"):
        msgs.image_to_numpy(msg, "/front/image")

    with pytest.raises(ValueError, match=r"'16UC1' needs dtype uint16, got float32"):
        msgs.numpy_to_image(np.zeros((2, 2), np.float32), "16UC1", 0)
    with pytest.raises(ValueError, match=r"'rgb8' needs shape \(H, W, 3\), got \(2, 2, 4\)"):
        msgs.numpy_to_image(np.zeros((2, 2, 4), np.uint8), "rgb8", 0)


def test_numpy_to_image_copies_its_input_unless_nothing_can_change_it() -> None:
    original = ENCODING_ARRAYS["mono8"]()
    msg = msgs.numpy_to_image(original, "mono8", 0)
    original[:] = 0
    assert msgs.image_to_numpy(msg).any()
    # Read-only and owning its memory: shared, not copied.
    frozen = ENCODING_ARRAYS["rgb8"]()
    frozen.flags.writeable = False
    assert np.shares_memory(msgs.numpy_to_image(frozen, "rgb8", 0).data, frozen)
    # A read-only view of a writable array can still change through that array: copied.
    base = ENCODING_ARRAYS["mono8"]()
    view = base.view()
    view.flags.writeable = False
    msg = msgs.numpy_to_image(view, "mono8", 0)
    base[:] = 0
    assert msgs.image_to_numpy(msg).any()


@pytest.mark.parametrize(
    "fields",
    [
        [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")],
        [("intensity", "<f4"), ("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("ring", "<u2")],
        [("x", "<f8"), ("y", "<f8"), ("z", "<f8")],
        [("y", "<f4"), ("x", "<f4"), ("z", "<f4")],
        [("x", ">f4"), ("y", ">f4"), ("z", ">f4")],
    ],
)
def test_cloud_xyz_matches_the_fields_for_every_layout(fields) -> None:
    rng = np.random.default_rng(2)
    points = np.zeros(50, dtype=fields)
    for name in ("x", "y", "z"):
        points[name] = rng.normal(size=50)
    expected = np.stack([points[name].astype(np.float32) for name in ("x", "y", "z")], -1)
    decoded = msgs.pointcloud2_to_array(msgs.array_to_pointcloud2(points, 0, "lidar"))
    for cloud, want in ((decoded, expected), (decoded[::3], expected[::3])):
        xyz = msgs.cloud_xyz(cloud)
        assert xyz.dtype == np.float32 and xyz.shape == want.shape
        assert not xyz.flags.writeable  # a view of the message must not be written through
        np.testing.assert_array_equal(xyz, want)
        # Decoding byte-swaps a big-endian cloud, so only the field order decides.
        names = [name for name, _ in fields]
        first = names.index("x")
        adjacent = names[first : first + 3] == ["x", "y", "z"] and fields[0][1][-2:] == "f4"
        assert np.shares_memory(xyz, cloud) == adjacent  # float32 x, y, z: no copy


def _pointfield(name: str, offset: int, datatype: int, count: int = 1):
    return msgs.message_class("sensor_msgs/msg/PointField")(
        name=name, offset=offset, datatype=datatype, count=count
    )


def test_pointcloud_layout_with_padding_organised_rows_and_nans() -> None:
    # A driver-like layout: x y z (12 B) + 4 B pad, intensity f32 @16, ring u16 @20, 32 B/point,
    # organised 2 x 3 with 8 bytes of padding after every row and a NaN (no return) point.
    height, width, point_step, row_step = 2, 3, 32, 3 * 32 + 8
    point = np.dtype(
        {
            "names": ["x", "y", "z", "intensity", "ring"],
            "formats": ["<f4", "<f4", "<f4", "<f4", "<u2"],
            "offsets": [0, 4, 8, 16, 20],
            "itemsize": point_step,
        }
    )
    grid = np.zeros((height, width), dtype=point)
    grid["x"] = np.arange(6).reshape(2, 3)
    grid["y"] = 10 + np.arange(6).reshape(2, 3)
    grid["z"] = 20 + np.arange(6).reshape(2, 3)
    grid["intensity"] = 0.5 * np.arange(6).reshape(2, 3)
    grid["ring"] = [[0, 0, 0], [1, 1, 1]]
    grid["x"][1, 1] = np.nan
    raw = np.zeros((height, row_step), np.uint8)
    raw[:, : width * point_step] = grid.view(np.uint8).reshape(height, -1)
    msg = msgs.message_class("sensor_msgs/msg/PointCloud2")(
        header=msgs.make_header(7, "lidar"),
        height=height,
        width=width,
        fields=[
            _pointfield("x", 0, 7),
            _pointfield("y", 4, 7),
            _pointfield("z", 8, 7),
            _pointfield("intensity", 16, 7),
            _pointfield("ring", 20, 4),
        ],
        is_bigendian=False,
        point_step=point_step,
        row_step=row_step,
        data=raw.reshape(-1),
        is_dense=False,
    )
    points = msgs.pointcloud2_to_array(msg, "/lidar/points")
    keep = [0, 1, 2, 3, 5]
    np.testing.assert_array_equal(points["x"], np.arange(6)[keep])
    np.testing.assert_array_equal(points["z"], 20 + np.arange(6)[keep])
    np.testing.assert_array_equal(points["ring"], [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(msgs.cloud_field(points, "intensity"), 0.5 * np.arange(6)[keep])
    assert msgs.cloud_field(points, "reflectivity") is None
    xyz = msgs.cloud_xyz(points)
    assert xyz.shape == (5, 3) and xyz.dtype == np.float32
    np.testing.assert_array_equal(xyz[4], [5, 15, 25])
    assert msgs.pointcloud2_to_array(msg, skip_nans=False).shape == (6,)


def test_pointcloud_round_trip_every_datatype_and_byte_order() -> None:
    dtype = np.dtype(
        [
            ("x", "<f4"),
            ("y", "<f4"),
            ("z", "<f8"),
            ("i8", "i1"),
            ("u8", "u1"),
            ("i16", "<i2"),
            ("u16", "<u2"),
            ("i32", "<i4"),
            ("u32", "<u4"),
            ("normal", "<f4", (3,)),
        ]
    )
    points = np.zeros(11, dtype=dtype)
    for name in dtype.names:
        values = RNG.integers(-100, 100, points[name].shape)
        points[name] = np.abs(values) if name.startswith("u") else values
    msg = msgs.array_to_pointcloud2(points, 3_000_000_000, "lidar")
    assert [(f.name, f.datatype, f.count) for f in msg.fields][3:] == [
        ("i8", 1, 1),
        ("u8", 2, 1),
        ("i16", 3, 1),
        ("u16", 4, 1),
        ("i32", 5, 1),
        ("u32", 6, 1),
        ("normal", 7, 3),
    ]
    assert msg.fields[2].datatype == 8 and msg.is_dense
    store = msgs.typestore()
    msg = store.deserialize_cdr(store.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)
    decoded = msgs.pointcloud2_to_array(msg)
    for name in dtype.names:
        np.testing.assert_array_equal(decoded[name], points[name], err_msg=name)

    big = points.astype(dtype.newbyteorder(">"))
    msg.data = big.view(np.uint8).reshape(-1).copy()
    msg.is_bigendian = True
    decoded = msgs.pointcloud2_to_array(msg)
    assert decoded.dtype.fields["u32"][0].isnative
    for name in dtype.names:
        np.testing.assert_array_equal(decoded[name], points[name], err_msg=name)


def test_labelled_points_publish_and_read_back() -> None:
    xyz = RNG.normal(size=(9, 3)).astype(np.float32)
    labels = RNG.integers(0, 25, 9)
    intensity = RNG.uniform(size=9).astype(np.float32)
    points = msgs.labelled_points(xyz, labels, intensity)
    msg = msgs.array_to_pointcloud2(points, 0, "lidar")
    assert [f.name for f in msg.fields] == ["x", "y", "z", "intensity", "label"]
    assert msg.fields[-1].datatype == 6  # UINT32 like PCL's PointXYZL
    decoded = msgs.pointcloud2_to_array(msg)
    np.testing.assert_array_equal(msgs.cloud_xyz(decoded), xyz)
    np.testing.assert_array_equal(decoded["label"], labels)
    np.testing.assert_array_equal(decoded["intensity"], intensity)
    with pytest.raises(ValueError, match=r"labels must be \(9,\) to match xyz, got \(8,\)"):
        msgs.labelled_points(xyz, labels[:8])


def test_labelled_points_carry_rgb_as_pcl_and_rviz_read_it() -> None:
    assert msgs.pack_rgb(np.array([255, 128, 1], np.uint8)) == 0xFF8001
    xyz = RNG.normal(size=(5, 3)).astype(np.float32)
    labels = np.arange(5)
    palette = np.array([[128, 64, 128], [0, 0, 142], [255, 0, 0], [0, 255, 0], [1, 2, 3]])
    rgb = msgs.pack_rgb(palette)
    points = msgs.labelled_points(xyz, labels, rgb=rgb)
    msg = msgs.array_to_pointcloud2(points, 0, "lidar")
    assert [f.name for f in msg.fields] == ["x", "y", "z", "label", "rgb"]
    assert msg.fields[-1].datatype == 7  # FLOAT32, PCL's PointXYZRGB "rgb"; rviz reads 4 bytes
    # rviz's RGB8 transformer: uint32 at the field's offset, r = bits 16-23, g 8-15, b 0-7.
    data = np.frombuffer(bytes(msg.data), np.uint8).reshape(5, msg.point_step)
    offset = msg.fields[-1].offset
    bits = data[:, offset : offset + 4].copy().view("<u4").reshape(-1)
    np.testing.assert_array_equal(np.stack([bits >> 16, (bits >> 8) & 255, bits & 255], 1),
                                  palette)  # fmt: skip
    decoded = msgs.pointcloud2_to_array(msg)
    np.testing.assert_array_equal(decoded["rgb"].view(np.uint32), rgb)
    np.testing.assert_array_equal(decoded["label"], labels)
    with pytest.raises(ValueError, match=r"rgb must be \(5,\), got \(4,\)"):
        msgs.labelled_points(xyz, labels, rgb=rgb[:4])


def test_malformed_pointclouds_give_clear_errors() -> None:
    points = msgs.labelled_points(np.zeros((4, 3), np.float32), np.zeros(4))
    msg = msgs.array_to_pointcloud2(points, 0)
    msg.fields = [f for f in msg.fields if f.name != "z"]
    with pytest.raises(ValueError,
                       match=r"'/points'.*missing field\(s\) z; present: 'x', 'y', 'label'"):
        msgs.pointcloud2_to_array(msg, "/points")

    msg = msgs.array_to_pointcloud2(points, 0)
    msg.fields[3].datatype = 9
    with pytest.raises(ValueError, match=r"field 'label' has unknown datatype 9"):
        msgs.pointcloud2_to_array(msg, "/points")

    msg = msgs.array_to_pointcloud2(points, 0)
    msg.fields[3].offset = 14
    with pytest.raises(ValueError, match=r"field 'label' .*does not fit in point_step 16"):
        msgs.pointcloud2_to_array(msg, "/points")

    msg = msgs.array_to_pointcloud2(points, 0)
    msg.data = msg.data[:-1]
    with pytest.raises(ValueError, match=r"'/points': truncated data.*need 64 bytes, got 63"):
        msgs.pointcloud2_to_array(msg, "/points")

    with pytest.raises(ValueError, match=r"needs a structured array"):
        msgs.array_to_pointcloud2(np.zeros((4, 3), np.float32), 0)


def _camera(model: str = "plumb_bob") -> CameraModel:
    D = {
        "plumb_bob": [-0.2, 0.05, 0.001, -0.002, 0.01],
        "rational_polynomial": [0.3, -0.1, 0.001, 0.002, 0.01, 0.6, -0.05, 0.02],
        "equidistant": [0.1, -0.02, 0.003, -0.001],
    }[model]
    K = [[400.0, 0, 319.5], [0, 410.0, 239.5], [0, 0, 1]]
    P = [[380.0, 0, 320.0, 0], [0, 380.0, 240.0, 0], [0, 0, 1, 0]]
    return CameraModel(640, 480, K, D, model, quaternion_to_matrix([0.01, 0, 0, 1]), P)


@pytest.mark.parametrize("model", ["plumb_bob", "rational_polynomial", "equidistant"])
def test_camera_info_round_trip(model: str) -> None:
    camera = _camera(model)
    msg = msgs.camera_to_camera_info(camera, 42, "camera_optical")
    assert msg.__msgtype__ == "sensor_msgs/msg/CameraInfo" and msg.distortion_model == model
    store = msgs.typestore()
    msg = store.deserialize_cdr(store.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)
    back = msgs.camera_info_to_camera(msg)
    assert (back.width, back.height, back.distortion_model) == (640, 480, model)
    for name in ("K", "D", "R", "P"):
        np.testing.assert_array_equal(getattr(back, name), getattr(camera, name), err_msg=name)


def test_camera_info_binning_and_roi() -> None:
    msg = msgs.camera_to_camera_info(_camera(), 0)
    msg.roi.x_offset, msg.roi.y_offset, msg.roi.width, msg.roi.height = 100, 40, 400, 300
    msg.binning_x = msg.binning_y = 2
    camera = msgs.camera_info_to_camera(msg)
    assert (camera.width, camera.height) == (200, 150)
    np.testing.assert_allclose(camera.K[0], [200.0, 0, (319.5 - 100) / 2])
    np.testing.assert_allclose(camera.K[1], [0, 205.0, (239.5 - 40) / 2])


def test_camera_info_validation_names_topic() -> None:
    msg = msgs.camera_to_camera_info(_camera(), 0)
    msg.k = np.zeros(9)
    with pytest.raises(ValueError, match=r"'/cam/camera_info'.*K is all zeros"):
        msgs.camera_info_to_camera(msg, "/cam/camera_info")
    msg = msgs.camera_to_camera_info(_camera(), 0)
    msg.distortion_model = "kannala_brandt"
    with pytest.raises(ValueError, match=r"unknown distortion_model 'kannala_brandt'.*plumb_bob"):
        msgs.camera_info_to_camera(msg, "/cam/camera_info")
    msg = msgs.camera_to_camera_info(_camera(), 0)
    msg.k = np.ones(6)
    with pytest.raises(ValueError, match=r"k must have 9, r 9 and p 12 values"):
        msgs.camera_info_to_camera(msg, "/cam/camera_info")
    # An empty D (uncalibrated distortion) is fine and means no distortion.
    msg = msgs.camera_to_camera_info(_camera(), 0)
    msg.d = np.zeros(0)
    assert not msgs.camera_info_to_camera(msg).is_distorted


def test_transform_messages_round_trip() -> None:
    T = make_transform([0.1, -0.2, 0.3, 0.9], [1.0, -2.0, 0.5])
    stamped = msgs.matrix_to_transform_stamped(T, 5_000_000_001, "base_link", "lidar")
    assert stamped.header.frame_id == "base_link" and stamped.child_frame_id == "lidar"
    np.testing.assert_allclose(msgs.transform_to_matrix(stamped), T, atol=1e-12)
    np.testing.assert_allclose(msgs.transform_to_matrix(stamped.transform), T, atol=1e-12)
    tf = msgs.matrices_to_tf_message(
        {("base_link", "lidar"): T, ("base_link", "cam"): np.eye(4)}, 9
    )
    store = msgs.typestore()
    tf = store.deserialize_cdr(store.serialize_cdr(tf, tf.__msgtype__), tf.__msgtype__)
    table = msgs.tf_message_to_matrices(tf)
    assert set(table) == {("base_link", "lidar"), ("base_link", "cam")}
    stamp, matrix = table[("base_link", "lidar")]
    assert stamp == 9
    np.testing.assert_allclose(matrix, T, atol=1e-12)


def test_stamps() -> None:
    assert msgs.stamp_to_ns(msgs.ns_to_stamp(1_234_567_890_123)) == 1_234_567_890_123
    header = msgs.make_header(msgs.make_header(77, "a"))
    assert (msgs.stamp_to_ns(header.stamp), header.frame_id) == (77, "a")
    assert msgs.header_stamp_ns(msgs.numpy_to_image(np.zeros((1, 1), np.uint8), "mono8", 99)) == 99
    with pytest.raises(ValueError, match=r"stamp_ns: must be >= 0"):
        msgs.ns_to_stamp(-1)
    with pytest.raises(ValueError, match=r"'sec' and 'nanosec'"):
        msgs.stamp_to_ns(12)


@pytest.mark.parametrize(
    ("sec", "nanosec", "allow_zero", "fault"),
    [
        (1, 1_999_999_999, False, r"nanosec is 1999999999, not below 10\^9"),
        (1_700_000_000, 4_294_967_295, False, r"nanosec is 4294967295"),
        (5, 1_000_000_000, True, r"nanosec is 1000000000"),  # the first value that is not a time
        (-5, 0, False, r"sec is -5, negative"),
        (-1, 999_999_999, True, r"sec is -1, negative"),
        (0, 0, False, r"is 0 \(unset\)"),
    ],
)
def test_the_stamp_rule_names_each_fault(sec, nanosec, allow_zero, fault) -> None:
    """Stamps that are not times are refused with their own fault, not as 'unset'."""
    stamp = msgs.message_class("builtin_interfaces/msg/Time")(sec=sec, nanosec=nanosec)
    with pytest.raises(msgs.StampError, match=fault) as caught:
        msgs.checked_stamp_ns(stamp, allow_zero=allow_zero)
    assert caught.value.reason == ("zero_stamp" if (sec, nanosec) == (0, 0) else "invalid_stamp")


def test_the_stamp_rule_accepts_every_time_and_zero_only_where_allowed() -> None:
    time = msgs.message_class("builtin_interfaces/msg/Time")
    for sec, nanosec in ((0, 1), (1, 999_999_999), (2**31 - 1, 999_999_999), (1_700_000_000, 5)):
        assert msgs.checked_stamp_ns(time(sec=sec, nanosec=nanosec)) == sec * 10**9 + nanosec
    assert msgs.checked_stamp_ns(time(sec=0, nanosec=0), allow_zero=True) == 0
    image = msgs.numpy_to_image(np.zeros((1, 1), np.uint8), "mono8", 7)
    assert msgs.checked_header_stamp_ns(image) == 7
    with pytest.raises(msgs.StampError, match="no 'header'") as caught:
        msgs.checked_header_stamp_ns(time(sec=1, nanosec=0))
    assert caught.value.reason == "bad_header"


def test_import_is_light() -> None:
    import subprocess

    code = "import sys, mlesam_ros.msgs; print('cv2' in sys.modules, 'torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_agrees_with_sensor_msgs_py_when_installed() -> None:
    point_cloud2 = pytest.importorskip(
        "sensor_msgs_py.point_cloud2", reason="sensor_msgs_py ships only inside a ROS 2 install"
    )
    points = msgs.labelled_points(RNG.normal(size=(6, 3)).astype(np.float32), np.arange(6))
    ours = msgs.array_to_pointcloud2(points, 0, "lidar")
    # sensor_msgs_py wants rclpy's class: hand it the same CDR bytes the node publishes.
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import PointCloud2

    from mlesam_ros.pipeline import messages

    msg = deserialize_message(messages.encode(ours, messages.POINTCLOUD2), PointCloud2)
    # read_points (structured), not read_points_numpy: Humble's numpy variant refuses clouds
    # whose fields differ in type even when only x, y, z are asked for (the label is uint32).
    theirs = point_cloud2.read_points(msg, field_names=("x", "y", "z"))
    xyz = np.stack([theirs["x"], theirs["y"], theirs["z"]], axis=-1)
    np.testing.assert_array_equal(xyz, msgs.cloud_xyz(msgs.pointcloud2_to_array(ours)))


def test_agrees_with_cv_bridge_when_installed() -> None:
    cv_bridge = pytest.importorskip(
        "cv_bridge", reason="cv_bridge is installed only with ROS (its PyPI build is ROS 1)"
    )
    bridge = cv_bridge.CvBridge()
    for encoding in ("rgb8", "mono16", "32FC1"):
        msg = msgs.numpy_to_image(ENCODING_ARRAYS[encoding](), encoding, 0)
        np.testing.assert_array_equal(bridge.imgmsg_to_cv2(msg), msgs.image_to_numpy(msg))
