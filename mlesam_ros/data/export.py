"""Write synthetic drives as a robot would record them: a ROS 2 bag and a DELIVER-layout tree.

The bag uses rosbags' writer (mcap or sqlite3 storage) and the project typestore (ROS 2
Humble); messages come from ``mlesam_ros.msgs``. The DELIVER tree lets the same frames train a
model through ``DeliverDataset``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from mlesam_ros.data import topics
from mlesam_ros.data.synth import SyntheticFrame
from mlesam_ros.data.synthetic_dataset import frame_to_images

STORAGES = ("mcap", "sqlite3")
COMPRESSED_DEPTH_MAX_M = 100.0
"""``depth_max`` of recorded compressedDepth 32FC1 (the transport's largest: streets are deep)."""
COMPRESSED_TRANSPORTS = {"rgb": "compressed", "depth": "compressedDepth", "thermal": "compressed"}
"""``transport.<sensor>`` of a bag recorded with ``compressed``."""


class BagRecorder:
    """Record synthetic frames into a ROS 2 bag (use as a context manager).

    Per frame: RGB (rgb8), depth (32FC1 metres with NaN for no return, or 16UC1 millimetres
    with 0), thermal (mono16 centi-kelvin), camera infos, the LiDAR cloud (x, y, z, intensity
    float32, ring uint16) and ground-truth labels (mono8); ``/tf_static`` once at the start.
    A failed sensor's message is simply not written, as with a real dropout.

    ``compressed`` records the cameras as image_transport streams them: RGB as JPEG on
    ``<topic>/compressed``, thermal as 16-bit PNG on ``<topic>/compressed`` and depth on
    ``<topic>/compressedDepth`` (``depth_codec`` png or rvl; 32FC1 quantised to inverse depth
    with ``depth_max`` :data:`COMPRESSED_DEPTH_MAX_M`).
    """

    def __init__(self, path: str | Path, storage: str = "mcap", depth_encoding: str = "32FC1",
                 compressed: bool = False, depth_codec: str = "png"):  # fmt: skip
        if depth_codec not in ("png", "rvl"):
            raise ValueError(f"depth_codec: choose png or rvl, got {depth_codec!r}")
        self.compressed, self.depth_codec = compressed, depth_codec
        if storage not in STORAGES:
            raise ValueError(f"storage: choose from {', '.join(STORAGES)}, got {storage!r}")
        if depth_encoding not in ("32FC1", "16UC1"):
            raise ValueError(f"depth_encoding: choose 32FC1 or 16UC1, got {depth_encoding!r}")
        self.path = Path(path)
        if self.path.exists():
            raise ValueError(f"bag: {self.path} already exists; remove it or choose another --out")
        self.storage = storage
        self.depth_encoding = depth_encoding
        self._writer = None
        self._connections: dict[str, object] = {}
        self._tf_written = False

    def __enter__(self) -> BagRecorder:
        """Open the bag."""
        from rosbags.rosbag2 import StoragePlugin, Writer

        plugin = StoragePlugin.MCAP if self.storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=9, storage_plugin=plugin)
        self._writer.open()
        return self

    def __exit__(self, *exc_info) -> None:
        """Close the bag (also on error, so what was written stays readable)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _write(self, topic: str, msgtype: str, message, stamp_ns: int) -> None:
        from mlesam_ros.msgs import typestore

        store = typestore()
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, typestore=store, offered_qos_profiles=topics.offered_qos(topic)
            )
        data = store.serialize_cdr(message, msgtype)
        self._writer.write(self._connections[topic], int(stamp_ns), data)

    def write_tf_static(self, frame: SyntheticFrame) -> None:
        """Write the rig's extrinsics (base_link → each sensor frame) on /tf_static."""
        from mlesam_ros.msgs.transforms import matrices_to_tf_message

        rig = frame.rig
        transforms = {
            (rig.base_frame, spec.frame_id): spec.T_base_from_sensor
            for spec in (rig.rgb, rig.depth, rig.thermal, rig.lidar)
        }
        stamp = min(frame.stamps_ns.values())
        self._write(topics.TF_STATIC_TOPIC, topics.TF_TYPE,
                    matrices_to_tf_message(transforms, stamp), stamp)  # fmt: skip
        self._tf_written = True

    def write(self, frame: SyntheticFrame) -> None:
        """Write every message of one frame, stamped with its sensor's stamp."""
        from mlesam_ros.msgs import array_to_pointcloud2, camera_to_camera_info, numpy_to_image

        if self._writer is None:
            raise ValueError("BagRecorder: use it inside a `with` block")
        if not self._tf_written:
            self.write_tf_static(frame)
        rig, stamps = frame.rig, frame.stamps_ns
        depth = frame.depth
        if depth is not None:
            if self.depth_encoding == "32FC1":
                depth = np.where(depth > 0, depth, np.nan).astype(np.float32)
            else:
                # Millimetres; beyond 65.535 m is unrepresentable, so it becomes "no return".
                millimetres = np.rint(depth * 1000.0)
                depth = np.where(millimetres <= 65535, millimetres, 0).astype(np.uint16)
        images = {
            "rgb": (frame.rgb, "rgb8"),
            "depth": (depth, self.depth_encoding),
            "thermal": (frame.thermal, "mono16"),
        }
        for sensor, (array, encoding) in images.items():
            if array is None:
                continue
            spec = getattr(rig, sensor)
            stamp = stamps[sensor]
            if self.compressed:
                self._write_compressed(sensor, array, encoding, stamp, spec.frame_id)
            else:
                self._write(topics.IMAGE_TOPICS[sensor], topics.IMAGE_TYPE,
                            numpy_to_image(array, encoding, stamp, spec.frame_id), stamp)
            self._write(topics.INFO_TOPICS[sensor], topics.CAMERA_INFO_TYPE,
                        camera_to_camera_info(spec.camera, stamp, spec.frame_id), stamp)
        if frame.lidar is not None:
            stamp = stamps["lidar"]
            self._write(topics.LIDAR_TOPIC, topics.POINTCLOUD_TYPE,
                        array_to_pointcloud2(frame.lidar, stamp, rig.lidar.frame_id), stamp)
        self._write(topics.GT_LABELS_TOPIC, topics.IMAGE_TYPE,
                    numpy_to_image(frame.labels.astype(np.uint8), "mono8", stamps["rgb"],
                                   rig.rgb.frame_id), stamps["rgb"])  # fmt: skip


    def _write_compressed(self, sensor: str, array: np.ndarray, encoding: str, stamp: int,
                          frame_id: str) -> None:  # fmt: skip
        from mlesam_ros.msgs.compressed import (
            COMPRESSED_IMAGE,
            compress_depth,
            compress_image,
            transport_topic,
        )

        transport = COMPRESSED_TRANSPORTS[sensor]
        if sensor == "depth":
            message = compress_depth(array, encoding, stamp, frame_id, codec=self.depth_codec,
                                     depth_max_m=COMPRESSED_DEPTH_MAX_M)  # fmt: skip
        else:
            codec = "jpeg" if sensor == "rgb" else "png"  # thermal counts stay 16-bit
            message = compress_image(array, encoding, stamp, frame_id, codec=codec)
        topic = transport_topic(topics.IMAGE_TOPICS[sensor], transport)
        self._write(topic, COMPRESSED_IMAGE, message, stamp)


def surround_topics(camera: str) -> dict[str, str]:
    """Topics of one camera of a surround rig (what ``cameras.<camera>.*`` defaults expect)."""
    return {"rgb": f"/{camera}/image_raw", "rgb_info": f"/{camera}/camera_info",
            "depth": f"/{camera}/depth/image_raw", "depth_info": f"/{camera}/depth/camera_info",
            "gt_labels": topics.camera_truth_topic(camera)}  # fmt: skip


def surround_tf_static(rig) -> tuple[str, str, dict]:
    """``(topic, type, transforms)`` of the rig's extrinsics: base_link → every sensor frame."""
    transforms = {(rig.base_frame, spec.frame_id): spec.T_base_from_sensor
                  for spec in (*rig.cameras.values(), *rig.depths.values(), rig.lidar)}
    return topics.TF_STATIC_TOPIC, topics.TF_TYPE, transforms


def surround_messages(frame, depth_encoding: str = "32FC1") -> list[tuple[str, str, object, int]]:
    """Every message of one surround frame as ``(topic, type, message, stamp)``.

    Per camera its RGB (rgb8), registered depth, both CameraInfos and its ground-truth labels
    (``/mlesam/<camera>/gt_labels``, stamped like its RGB); then the LiDAR sweep.
    """
    from mlesam_ros.msgs import array_to_pointcloud2, camera_to_camera_info, numpy_to_image

    rig, stamps, out = frame.rig, frame.stamps_ns, []
    for name, spec in rig.cameras.items():
        names, depth_spec = surround_topics(name), rig.depths[name]
        stamp, depth_stamp = stamps[name], stamps[f"{name}/depth"]
        if frame.rgb[name] is not None:
            out.append((names["rgb_info"], topics.CAMERA_INFO_TYPE,
                        camera_to_camera_info(spec.camera, stamp, spec.frame_id), stamp))
            out.append((names["rgb"], topics.IMAGE_TYPE,
                        numpy_to_image(frame.rgb[name], "rgb8", stamp, spec.frame_id), stamp))
        depth = frame.depth[name]
        if depth is not None:
            depth = _depth_image(depth, depth_encoding)
            out.append((names["depth_info"], topics.CAMERA_INFO_TYPE,
                        camera_to_camera_info(depth_spec.camera, depth_stamp,
                                              depth_spec.frame_id), depth_stamp))
            out.append((names["depth"], topics.IMAGE_TYPE,
                        numpy_to_image(depth, depth_encoding, depth_stamp, depth_spec.frame_id),
                        depth_stamp))
        out.append((names["gt_labels"], topics.IMAGE_TYPE,
                    numpy_to_image(frame.labels[name].astype(np.uint8), "mono8", stamp,
                                   spec.frame_id), stamp))
    if frame.lidar is not None:
        stamp = stamps["lidar"]
        out.append((topics.LIDAR_TOPIC, topics.POINTCLOUD_TYPE,
                    array_to_pointcloud2(frame.lidar, stamp, rig.lidar.frame_id), stamp))
    return sorted(out, key=lambda item: item[3])  # fmt: skip


def _depth_image(depth: np.ndarray, encoding: str) -> np.ndarray:
    """Metres (0 = no return) as 32FC1 with NaN holes or 16UC1 millimetres with 0 holes."""
    if encoding == "32FC1":
        return np.where(depth > 0, depth, np.nan).astype(np.float32)
    # Millimetres; beyond 65.535 m is unrepresentable, so it becomes "no return".
    millimetres = np.rint(depth * 1000.0)
    return np.where(millimetres <= 65535, millimetres, 0).astype(np.uint16)


def camera_parameters(rig) -> dict[str, object]:
    """Node parameters for a surround rig's bag (``cameras.names`` and each camera's depth)."""
    parameters: dict[str, object] = {"cameras.names": ",".join(rig.cameras)}
    for name in rig.cameras:
        parameters[f"cameras.{name}.depth"] = surround_topics(name)["depth"]
    return parameters


def write_surround_bag(frames: Iterable, path: str | Path, storage: str = "mcap",
                       depth_encoding: str = "32FC1") -> int:  # fmt: skip
    """Record surround frames into a ROS 2 bag (tf_static first); return the frame count."""
    from mlesam_ros.msgs import matrices_to_tf_message

    count = 0
    with BagRecorder(path, storage, depth_encoding) as recorder:
        for frame in frames:
            if count == 0:
                topic, msgtype, transforms = surround_tf_static(frame.rig)
                first = min(frame.stamps_ns.values())
                recorder._write(topic, msgtype, matrices_to_tf_message(transforms, first), first)
            for topic, msgtype, message, stamp in surround_messages(frame, depth_encoding):
                recorder._write(topic, msgtype, message, stamp)
            count += 1
    return count


def write_deliver_frame(
    root: str | Path, frame: SyntheticFrame, split: str, map_name: str
) -> Path:
    """Write one frame into a DELIVER-layout tree; return the RGB file written.

    Files: ``img`` (RGB), ``hha`` (our 3-channel depth encoding, see ``encode.encode_depth``;
    not HHA), ``lidar`` (the model's LiDAR image), ``thermal`` (registered, an extension to
    DELIVER) and ``semantic`` (id + 1 in the red channel, 0 = unlabelled, as DELIVER stores it).
    A failed sensor is written as a black image so every folder keeps the same file count.
    """
    import cv2

    root = Path(root)
    images, _ = frame_to_images(frame, ("rgb", "depth", "lidar", "thermal"))
    stem = f"{frame.index:06d}"
    folders = {"img": ("rgb", images[0]), "hha": ("depth", images[1]),
               "lidar": ("lidar", images[2]), "thermal": ("thermal", images[3])}  # fmt: skip
    semantic = np.zeros((*frame.labels.shape, 3), dtype=np.uint8)
    labels = frame.labels.astype(np.int64)
    semantic[..., 0] = np.where(labels < 255, labels + 1, 0).astype(np.uint8)
    tokens = {"img": "rgb", "hha": "depth", "lidar": "lidar", "thermal": "thermal"}
    written = None
    for folder, (_, image) in [*folders.items(), ("semantic", (None, semantic))]:
        token = tokens.get(folder, "semantic")
        directory = root / folder / frame.condition / split / map_name
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{stem}_{token}_front.png"
        if not cv2.imwrite(str(path), np.ascontiguousarray(image[..., ::-1])):
            raise ValueError(f"deliver tree: could not write {path}")
        if folder == "img":
            written = path
    return written


def export_frames(
    frames: Iterable[SyntheticFrame],
    out: str | Path,
    storage: str = "mcap",
    depth_encoding: str = "32FC1",
    split: str = "train",
    map_prefix: str = "MAP_synth",
    write_tree: bool = True,
    write_bag: bool = True,
    compressed: bool = False,
    depth_codec: str = "png",
) -> dict[str, object]:
    """Write ``frames`` to ``out/bag`` and ``out/deliver``; return a summary dict.

    ``compressed``/``depth_codec``: record the cameras compressed (:class:`BagRecorder`).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    bag_path = out / "bag"
    tree = out / "deliver"
    recorder = (BagRecorder(bag_path, storage, depth_encoding, compressed, depth_codec)
                if write_bag else None)  # fmt: skip
    if recorder is not None:
        recorder.__enter__()
    try:
        for frame in frames:
            if recorder is not None:
                recorder.write(frame)
            if write_tree:
                write_deliver_frame(tree, frame, split, f"{map_prefix}_{frame.condition}")
            count += 1
    finally:
        if recorder is not None:
            recorder.__exit__(None, None, None)
    return {"frames": count, "bag": bag_path if write_bag else None,
            "deliver": tree if write_tree else None}  # fmt: skip
