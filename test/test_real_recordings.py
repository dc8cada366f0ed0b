"""Real camera + LiDAR recordings (``../shared/real``) as ROS messages and bags.

Each recording's SOURCE.md gives the published LiDAR → pixel formula; these tests turn the
calibration into the messages a driver would publish (CameraInfo, ``/tf_static``,
PointCloud2), push them through the same paths the node uses and check the pixels against
the formula. The data are under non-commercial licences: they are read in place, never
copied into the repository. Skipped where the shared folder is absent; ``MLESAM_SHARED``
points elsewhere (default: ``../shared`` next to the repository root).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_checkpoint

from mlesam_ros.geometry import project_lidar
from mlesam_ros.msgs import (
    array_to_pointcloud2,
    camera_info_to_camera,
    cloud_xyz,
    header_stamp_ns,
    image_to_numpy,
    matrices_to_tf_message,
    message_class,
    numpy_to_image,
    pointcloud2_to_array,
)
from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.tf_buffer import TfBuffer
from mlesam_ros.replay.run import replay_bag

REPO = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("MLESAM_SHARED", REPO.parent / "shared")) / "real"
KITTI_RAW = REAL / "kitti_raw_2011_09_26_10frames"
KITTI_OBJECT = REAL / "kitti_object_3frames"
NUSCENES = REAL / "nuscenes_mmdet3d_demo"
PJLAB = REAL / "pjlab_lidar_camera_3frames"

pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} (real recordings) absent")


def kitti_calibration(path: Path) -> dict[str, np.ndarray]:
    values = {}
    for line in path.read_text().splitlines():
        if ":" in line:
            key, numbers = line.split(":", 1)
            values[key.strip()] = np.array(numbers.split(), dtype=np.float64)
    return values


def kitti_frame(image: Path, scan: Path, calib: Path):
    """(rgb, xyzi, K, T_cam2_from_velo, formula) of one KITTI frame.

    The formula is SOURCE.md's ``P2 · R0_rect · Tr_velo_to_cam · [x y z 1]``. A CameraInfo
    carries K without the P2 offset, so the offset ``K⁻¹ · P2[:, 3]`` (camera 2 relative to
    the rectified camera 0) goes into the extrinsic instead: the same projection.
    """
    import cv2

    calibration = kitti_calibration(calib)
    P2 = calibration["P2"].reshape(3, 4)
    R0 = np.eye(4)
    R0[:3, :3] = calibration["R0_rect"].reshape(3, 3)
    Tr = np.vstack([calibration["Tr_velo_to_cam"].reshape(3, 4), [0, 0, 0, 1]])
    K = P2[:, :3]
    offset = np.eye(4)
    offset[:3, 3] = np.linalg.solve(K, P2[:, 3])
    rgb = cv2.cvtColor(cv2.imread(str(image), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    xyzi = np.fromfile(scan, dtype=np.float32).reshape(-1, 4)

    def formula(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        homogeneous = np.hstack([xyz, np.ones((len(xyz), 1))])
        projected = (P2 @ R0 @ Tr @ homogeneous.T).T
        return projected[:, :2] / projected[:, 2:3], projected[:, 2]

    return rgb, xyzi, K, offset @ R0 @ Tr, formula


def nuscenes_front():
    import json

    import cv2

    calibration = json.loads((NUSCENES / "calib.json").read_text())
    camera = calibration["cameras"]["CAM_FRONT"]
    K = np.array(camera["K"], dtype=np.float64)
    T = np.array(camera["lidar2cam"], dtype=np.float64)
    rgb = cv2.cvtColor(cv2.imread(str(NUSCENES / camera["img_path"])), cv2.COLOR_BGR2RGB)
    scan = np.fromfile(NUSCENES / calibration["lidar_path"], dtype=np.float32).reshape(-1, 5)

    def formula(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cam = (T[:3, :3] @ xyz.T).T + T[:3, 3]
        pixels = (K @ cam.T).T
        return pixels[:, :2] / pixels[:, 2:3], cam[:, 2]

    return rgb, scan[:, :4], K, T, formula


def read_pcd(path: Path) -> np.ndarray:
    """Structured points of a PCD v0.7 file (ascii/binary/binary_compressed).

    The header is a few ``KEY values`` lines; parsing it here costs 20 lines where pypcd4
    would add pydantic. LZF decompression comes from python-lzf.
    """
    raw = path.read_bytes()
    header: dict[str, list[str]] = {}
    offset = 0
    while True:
        end = raw.index(b"\n", offset)
        key, *values = raw[offset:end].decode("ascii").split()
        offset = end + 1
        header[key] = values
        if key == "DATA":
            break
    kinds = {("F", 4): "<f4", ("F", 8): "<f8", ("U", 1): "u1", ("U", 2): "<u2",
             ("U", 4): "<u4", ("I", 1): "i1", ("I", 2): "<i2", ("I", 4): "<i4"}
    dtype = np.dtype([(name, kinds[(kind, int(size))]) for name, kind, size in
                      zip(header["FIELDS"], header["TYPE"], header["SIZE"], strict=True)])
    count = int(header["POINTS"][0])
    mode = header["DATA"][0]
    if mode == "binary":
        return np.frombuffer(raw, dtype, count, offset)
    assert mode == "binary_compressed", mode
    import lzf

    compressed, size = np.frombuffer(raw, "<u4", 2, offset)
    data = lzf.decompress(raw[offset + 8 : offset + 8 + int(compressed)], int(size))
    points = np.zeros(count, dtype)
    column = 0
    for name in dtype.names:  # binary_compressed stores field after field
        width = dtype[name].itemsize * count
        points[name] = np.frombuffer(data, dtype[name], count, column)
        column += width
    return points


def pjlab_frame(index: int):
    """SOURCE.md: p = T·[x y z 1], keep p_z > 0, OpenCV plumb-bob distortion, then K."""
    import cv2

    folder = PJLAB / f"frame{index}"
    calibration = kitti_calibration(folder / "calib.txt")
    K = calibration["K"].reshape(3, 3)
    D = np.concatenate([calibration["D"], np.zeros(5 - calibration["D"].size)])
    T = np.vstack([calibration["T"].reshape(3, 4), [0, 0, 0, 1]])
    rgb = cv2.cvtColor(cv2.imread(str(next(folder.glob("calib.*g")))), cv2.COLOR_BGR2RGB)
    points = read_pcd(folder / "calib.pcd")
    xyzi = np.stack([points[n].astype(np.float32) for n in ("x", "y", "z", "intensity")], 1)

    def formula(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        depth = (T[:3, :3] @ xyz.T).T[:, 2] + T[2, 3]
        rvec, _ = cv2.Rodrigues(T[:3, :3])
        uv, _ = cv2.projectPoints(xyz.reshape(-1, 1, 3), rvec, T[:3, 3], K, D)
        return uv.reshape(-1, 2), depth

    return rgb, xyzi, K, T, formula, D


def camera_info(rgb: np.ndarray, intrinsics: np.ndarray, stamp_ns: int, frame: str,
                distortion: np.ndarray | None = None):
    """A camera's CameraInfo: K, plumb-bob D (none: rectified), R = I, P = [K | 0]."""

    K = intrinsics
    P = np.hstack([K, np.zeros((3, 1))])
    return message_class("sensor_msgs/msg/CameraInfo")(
        header=numpy_to_image(rgb[:1, :1], "rgb8", stamp_ns, frame).header,
        height=rgb.shape[0], width=rgb.shape[1], distortion_model="plumb_bob",
        d=np.zeros(5) if distortion is None else distortion, k=K.reshape(-1),
        r=np.eye(3).reshape(-1), p=P.reshape(-1),
        binning_x=0, binning_y=0,
        roi=message_class("sensor_msgs/msg/RegionOfInterest")(
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )


def cloud(xyzi: np.ndarray, stamp_ns: int, frame: str):
    points = np.zeros(len(xyzi), [("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                  ("intensity", "<f4")])
    for index, name in enumerate(("x", "y", "z", "intensity")):
        points[name] = xyzi[:, index]
    return array_to_pointcloud2(points, stamp_ns, frame)


def roundtrip(message, msgtype: str):
    """Serialise and read back like a bag does (CDR through the project's typestore)."""
    store = m.ensure_vision_msgs()
    return store.deserialize_cdr(store.serialize_cdr(message, msgtype), msgtype)


RECORDINGS = {
    "kitti_raw_0": lambda: kitti_frame(KITTI_RAW / "image_02/0000000000.png",
                                       KITTI_RAW / "velodyne_points/0000000000.bin",
                                       KITTI_RAW / "calib.txt"),
    "kitti_object_0": lambda: kitti_frame(KITTI_OBJECT / "image_2/000000.png",
                                          KITTI_OBJECT / "velodyne/000000.bin",
                                          KITTI_OBJECT / "calib/000000.txt"),
    "nuscenes_cam_front": nuscenes_front,
    "pjlab_distorted_1": lambda: pjlab_frame(1),
}


# Points that land in the image, as each SOURCE.md reports them (checked there by hand).
IN_IMAGE = {
    "kitti_raw_0": (16_000, 16_600),  # "~16.3k points land in the image"
    "kitti_object_0": (18_600, 20_300),  # "18.6k-20.3k points per frame"
    "nuscenes_cam_front": (3_000, 4_800),  # "3.0k-4.8k points per camera"
    "pjlab_distorted_1": (10_500, 12_700),  # "10.5k-12.7k points per frame"
}


@pytest.mark.parametrize("name", sorted(RECORDINGS))
def test_messages_project_like_the_published_formula(name) -> None:
    """CameraInfo + /tf_static + PointCloud2 → the node's projection = SOURCE.md's formula."""

    rgb, xyzi, K, T_cam_from_lidar, formula, *distortion = RECORDINGS[name]()
    stamp = 1_000_000_000
    info = roundtrip(camera_info(rgb, K, stamp, "camera", *distortion), m.CAMERA_INFO)
    tf = roundtrip(matrices_to_tf_message({("camera", "lidar"): T_cam_from_lidar}, stamp),
                   "tf2_msgs/msg/TFMessage")
    points = roundtrip(cloud(xyzi, stamp, "lidar"), m.POINTCLOUD2)
    buffer = TfBuffer()
    assert buffer.add_message(tf, static=True) == []
    T = buffer.lookup("camera", "lidar", stamp)
    xyz = cloud_xyz(pointcloud2_to_array(points))
    projection = project_lidar(xyz, T, camera_info_to_camera(info))

    uv, depth = formula(xyz.astype(np.float64))
    height, width = rgb.shape[:2]
    cols, rows = np.floor(uv[:, 0] + 0.5), np.floor(uv[:, 1] + 0.5)
    expected = (depth >= 0.1) & (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    # Points within 1e-3 px of a pixel border may round either way after the quaternion
    # round trip of the (not exactly orthonormal) published rotation.
    border = (np.abs(uv[:, 0] + 0.5 - np.round(uv[:, 0] + 0.5)) < 1e-3) | (
        np.abs(uv[:, 1] + 0.5 - np.round(uv[:, 1] + 0.5)) < 1e-3)
    assert np.array_equal(projection.valid[~border], expected[~border])
    inside = np.flatnonzero(projection.valid)
    np.testing.assert_allclose(projection.uv[inside], uv[inside], atol=0.02)
    # SOURCE.md: ~16.3k (KITTI), 3.0k-4.8k (nuScenes), 10.5k-12.7k (PJLab)
    print(name, inside.size, xyzi.shape)
    assert 3_000 < inside.size < 40_000


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    """An RGB + LiDAR tiny model at KITTI's aspect."""
    return tiny_checkpoint(tmp_path_factory.mktemp("model"), ("rgb", "lidar"), (48, 160), seed=5)


def test_kitti_raw_bag_replays_and_paints_points_at_the_formula_pixels(
    tmp_path, model_path
) -> None:
    """Three consecutive KITTI raw frames as a 10 Hz bag: every frame labelled with the LiDAR
    fused, and each painted point carries the label of the pixel the formula puts it on."""
    from rosbags.rosbag2 import StoragePlugin, Writer


    store = m.ensure_vision_msgs()
    bag = tmp_path / "kitti"
    writer = Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    connections = {}

    def put(topic: str, msgtype: str, message, stamp: int) -> None:
        if topic not in connections:
            connections[topic] = writer.add_connection(topic, msgtype, typestore=store)
        writer.write(connections[topic], stamp, store.serialize_cdr(message, msgtype))

    formulas = {}
    start = 1_317_000_000_000_000_000  # 2011-09-26: stamps like the recording's clock
    for index in range(3):
        rgb, xyzi, K, T, formula = kitti_frame(
            KITTI_RAW / f"image_02/{index:010d}.png",
            KITTI_RAW / f"velodyne_points/{index:010d}.bin",
            KITTI_RAW / "calib.txt",
        )
        stamp = start + index * 100_000_000
        formulas[stamp] = (formula, rgb.shape[:2])
        if index == 0:
            put("/tf_static", "tf2_msgs/msg/TFMessage",
                matrices_to_tf_message({("camera_color_left", "velo_link"): T}, stamp), stamp)
        put("/kitti/camera_color_left/camera_info", m.CAMERA_INFO,
            camera_info(rgb, K, stamp, "camera_color_left"), stamp)
        put("/kitti/camera_color_left/image_raw", m.IMAGE,
            numpy_to_image(rgb, "rgb8", stamp, "camera_color_left"), stamp)
        put("/kitti/velo/pointcloud", m.POINTCLOUD2, cloud(xyzi, stamp, "velo_link"), stamp)
    writer.close()

    parameters = {
        "model.path": str(model_path),
        "topics.rgb": "/kitti/camera_color_left/image_raw",
        "topics.rgb_info": "/kitti/camera_color_left/camera_info",
        "topics.points": "/kitti/velo/pointcloud",
        "topics.depth": "",
        "topics.thermal": "",
        "output.labeled_points": True,
    }
    out = tmp_path / "out"
    result = replay_bag(bag, out, parameters, progress=False)
    assert result.presence == {"rgb+lidar": 3} and result.dropped == {}

    from rosbags.highlevel import AnyReader

    published: dict[str, list] = {}
    with AnyReader([out], default_typestore=store) as reader:
        for connection, _, raw in reader.messages():
            published.setdefault(connection.topic, []).append(
                reader.deserialize(raw, connection.msgtype))
    labels_by_stamp = {header_stamp_ns(msg): image_to_numpy(msg)
                       for msg in published[m.LABELS_TOPIC]}
    for msg in published[m.LABELED_POINTS_TOPIC]:
        stamp = header_stamp_ns(msg)
        formula, (height, width) = formulas[stamp]
        labels = labels_by_stamp[stamp]
        assert labels.shape == (height, width)
        points = pointcloud2_to_array(msg)
        assert points.size > 10_000
        xyz = np.stack([points["x"], points["y"], points["z"]], axis=1).astype(np.float64)
        uv, depth = formula(xyz)
        cols = np.floor(uv[:, 0] + 0.5).astype(int)
        rows = np.floor(uv[:, 1] + 0.5).astype(int)
        assert (depth > 0).all()
        assert ((cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)).all()
        agree = labels[rows, cols] == points["label"]
        assert agree.mean() > 0.999  # all but points on a pixel border


def test_mfnet_rgb_thermal_pairs_fuse_thermal_in_every_frame(tmp_path) -> None:
    """Real LWIR thermal (MFNet, one optical axis with the RGB: identity extrinsic, same
    CameraInfo): valid pixels, so fused in both frames, day and night, with no issue."""
    import cv2
    from rosbags.rosbag2 import StoragePlugin, Writer


    model_path = tiny_checkpoint(tmp_path, ("rgb", "thermal"), (48, 64), seed=5)
    store = m.ensure_vision_msgs()
    bag = tmp_path / "mfnet"
    writer = Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    connections = {}

    def put(topic: str, msgtype: str, message, stamp: int) -> None:
        if topic not in connections:
            connections[topic] = writer.add_connection(topic, msgtype, typestore=store)
        writer.write(connections[topic], stamp, store.serialize_cdr(message, msgtype))

    K = np.array([[700.0, 0, 320], [0, 700.0, 240], [0, 0, 1]])  # MFNet gives none; any K
    start = 1_500_000_000_000_000_000
    for index, name in enumerate(("01234N.png", "01477D.png")):
        rgba = cv2.imread(str(REAL / "mfnet_rgbt_2frames" / name), cv2.IMREAD_UNCHANGED)
        rgb = cv2.cvtColor(rgba[..., :3], cv2.COLOR_BGR2RGB)
        thermal = np.ascontiguousarray(rgba[..., 3])
        stamp = start + index * 100_000_000
        for sensor, image, encoding in (("rgb", rgb, "rgb8"), ("thermal", thermal, "mono8")):
            put(f"/{sensor}/camera_info", m.CAMERA_INFO, camera_info(rgb, K, stamp, "camera"),
                stamp)
            put(f"/{sensor}/image", m.IMAGE, numpy_to_image(image, encoding, stamp, "camera"),
                stamp)
    writer.close()
    parameters = {
        "model.path": str(model_path),
        "topics.rgb": "/rgb/image", "topics.rgb_info": "/rgb/camera_info",
        "topics.thermal": "/thermal/image", "topics.thermal_info": "/thermal/camera_info",
        "topics.depth": "", "topics.points": "",
    }
    result = replay_bag(bag, tmp_path / "out", parameters, progress=False)
    assert result.presence == {"rgb+thermal": 2}
    assert result.dropped == {} and not result.issues
