"""Shared test fixtures: a tiny model, a short synthetic drive, bags of it, a fake segmenter.

Fixtures are session-scoped where building them costs seconds (the tiny checkpoint, the
drive), so every test file that replays a bag shares one. Helpers that build inputs (bag
records, bag writing and reading, /diagnostics statuses) are imported as
``from conftest import ...``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from mlesam_ros.data import topics
from mlesam_ros.data.classes import DELIVER_CLASSES
from mlesam_ros.data.synth import SyntheticDrive, default_rig
from mlesam_ros.engine.spec import ModelSpec
from mlesam_ros.msgs import (
    array_to_pointcloud2,
    camera_to_camera_info,
    make_header,
    matrices_to_tf_message,
    message_class,
    numpy_to_image,
)
from mlesam_ros.pipeline import messages as m
from mlesam_ros.replay.run import replay_bag

SIZE = (120, 160)  # camera (H, W) of the shared drive
MODEL_SIZE = (48, 64)  # input (H, W) of the shared tiny model
MODALITIES = ("rgb", "depth", "thermal", "lidar")
FULL = "+".join(MODALITIES)  # replay's name of a frame with every sensor fused


# -- models ---------------------------------------------------------------------------------


def tiny_checkpoint(folder: Path, modalities=MODALITIES, size=MODEL_SIZE, seed=3) -> Path:
    """An untrained tiny MLE-SAM checkpoint (torch needed; its labels are noise)."""
    from mlesam_ros.engine.torch_model import build_untrained
    from mlesam_ros.model import save_checkpoint

    model = build_untrained("tiny", tuple(modalities), size, 25, seed=seed)
    return save_checkpoint(folder / "tiny.pt", model, class_names=list(DELIVER_CLASSES))


@pytest.fixture(scope="session")
def model_path(tmp_path_factory) -> Path:
    """The tiny four-modality model every replay test runs."""
    pytest.importorskip("torch")
    return tiny_checkpoint(tmp_path_factory.mktemp("model"))


def tiny_onnx(path: Path, input_names=("images", "present"), modalities_in_graph=4) -> Path:
    """A hand-built ONNX with mlesam metadata for 4 modalities at 48x64 (see ModelSpec)."""
    import onnx
    from onnx import TensorProto, helper


    spec = ModelSpec(MODALITIES, MODEL_SIZE, DELIVER_CLASSES)
    h, w = MODEL_SIZE
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", [input_names[0]], ["mean"], axes=[1, 2], keepdims=0),
            helper.make_node("Identity", ["mean"], ["confidence"]),
            helper.make_node("Cast", ["mean"], ["labels"], to=TensorProto.INT32),
        ],
        "tiny",
        [
            helper.make_tensor_value_info(input_names[0], TensorProto.FLOAT,
                                          [1, modalities_in_graph, 3, h, w]),
            helper.make_tensor_value_info(input_names[1], TensorProto.BOOL, [1, 4]),
        ],
        [
            helper.make_tensor_value_info("labels", TensorProto.INT32, [1, h, w]),
            helper.make_tensor_value_info("confidence", TensorProto.FLOAT, [1, h, w]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    for key, value in spec.to_metadata_props().items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


class FakeSegmenter:
    """A model without a model: label = a fixed stripe pattern, confidence 0.5; counts calls."""

    modalities = MODALITIES
    input_size = (30, 40)
    backend, device, artefact = "fake", "cpu", "fake"

    def __init__(self, num_classes: int = 25, delay_s: float = 0.0) -> None:
        self.class_names = tuple(f"c{i}" for i in range(num_classes))
        self.delay_s = delay_s
        self.calls: list[np.ndarray] = []
        self.closed = 0

    def segment(self, images, present):
        self.calls.append(present.copy())
        time.sleep(self.delay_s)
        stripes = np.arange(self.input_size[1]) * 7 % len(self.class_names)
        labels = np.broadcast_to(stripes, self.input_size).astype(np.int32)
        return SimpleNamespace(labels=labels, confidence=np.full(self.input_size, 0.5, np.float32))

    def close(self) -> None:
        self.closed += 1


# -- a drive and its bag --------------------------------------------------------------------


@pytest.fixture(scope="session")
def frames():
    """Six frames of a synthetic drive, 160x120, a 16-beam LiDAR."""
    rig = default_rig(width=SIZE[1], height=SIZE[0], lidar_beams=16, lidar_azimuth_steps=256)
    return list(SyntheticDrive(seed=2, rig=rig).frames(6))


@dataclass
class Record:
    """One bag message: topic, type, message, log time (and the frame it belongs to)."""

    topic: str
    msgtype: str
    message: Any
    log_ns: int
    frame: int = -1


def drive_records(frames, *, tf: bool = True, truth: bool = False) -> list[Record]:
    """The frames as a recorder writes them: tf_static first, then each sensor at its stamp.

    ``truth`` adds the ground-truth labels (``/mlesam/gt_labels``) replay scores against.
    """
    rig = frames[0].rig
    records = []
    if tf:
        first = min(frames[0].stamps_ns.values())
        transforms = {(rig.base_frame, s.frame_id): s.T_base_from_sensor
                      for s in (rig.rgb, rig.depth, rig.thermal, rig.lidar)}  # fmt: skip
        records.append(Record("/tf_static", topics.TF_TYPE,
                              matrices_to_tf_message(transforms, first), first))  # fmt: skip
    for index, frame in enumerate(frames):
        stamps = frame.stamps_ns
        depth = None if frame.depth is None else np.where(
            frame.depth > 0, frame.depth, np.nan).astype(np.float32)  # fmt: skip
        for sensor, array, encoding in (("rgb", frame.rgb, "rgb8"), ("depth", depth, "32FC1"),
                                        ("thermal", frame.thermal, "mono16")):  # fmt: skip
            if array is None:
                continue
            spec, stamp = getattr(rig, sensor), stamps[sensor]
            records.append(Record(topics.INFO_TOPICS[sensor], topics.CAMERA_INFO_TYPE,
                                  camera_to_camera_info(spec.camera, stamp, spec.frame_id),
                                  stamp, index))  # fmt: skip
            records.append(Record(topics.IMAGE_TOPICS[sensor], topics.IMAGE_TYPE,
                                  numpy_to_image(array, encoding, stamp, spec.frame_id),
                                  stamp, index))  # fmt: skip
        if frame.lidar is not None:
            records.append(Record(topics.LIDAR_TOPIC, topics.POINTCLOUD_TYPE,
                                  array_to_pointcloud2(frame.lidar, stamps["lidar"],
                                                       rig.lidar.frame_id),
                                  stamps["lidar"], index))  # fmt: skip
        if truth:
            labels = numpy_to_image(frame.labels.astype(np.uint8), "mono8", stamps["rgb"],
                                    rig.rgb.frame_id)  # fmt: skip
            records.append(Record(topics.GT_LABELS_TOPIC, topics.IMAGE_TYPE, labels,
                                  stamps["rgb"], index))  # fmt: skip
    return records


def write_bag(path: Path, records: list[Record], storage: str = "mcap") -> Path:
    """Write ``records`` as a rosbag2, each at its log time (the writer keeps the order)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    store = m.ensure_vision_msgs()
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    writer = Writer(path, version=9, storage_plugin=plugin)
    writer.open()
    connections = {}
    for record in records:
        if record.topic not in connections:
            connections[record.topic] = writer.add_connection(record.topic, record.msgtype,
                                                              typestore=store)  # fmt: skip
        writer.write(connections[record.topic], record.log_ns,
                     store.serialize_cdr(record.message, record.msgtype))  # fmt: skip
    writer.close()
    return path


def read_bag(path: Path) -> dict[str, list]:
    """Every message of a bag, decoded: topic → [(log time, message), ...]."""
    from rosbags.highlevel import AnyReader

    messages: dict[str, list] = {}
    with AnyReader([path], default_typestore=m.ensure_vision_msgs()) as reader:
        for connection, timestamp, raw in reader.messages():
            messages.setdefault(connection.topic, []).append(
                (timestamp, reader.deserialize(raw, connection.msgtype)))  # fmt: skip
    return messages


def statuses(out: dict[str, list], name: str) -> list[tuple[int, int, str, dict[str, str]]]:
    """(time, level, message, values) of every /diagnostics status called ``name``."""
    return [
        (t, s.level, s.message, {kv.key: kv.value for kv in s.values})
        for t, array in out.get(m.DIAGNOSTICS_TOPIC, [])
        for s in array.status
        if s.name == name
    ]


def replay_records(tmp_path: Path, records: list[Record], model_path: Path, **parameters):
    """Write ``records`` as a bag, replay it with the model; (result, output bag's messages)."""

    bag = write_bag(tmp_path / "in", records)
    params = {"model.path": str(model_path), "diagnostics.period_s": 0.1, **parameters}
    result = replay_bag(bag, tmp_path / "out", params, progress=False)
    return result, read_bag(tmp_path / "out")


def with_stamp(message: Any, stamp_ns: int) -> Any:
    """A copy of ``message`` with another header stamp (rosbags messages are dataclasses)."""
    return replace(message, header=make_header(stamp_ns, message.header.frame_id))


def tf_message(parent: str, child: str, stamp_ns: int, xyz, xyzw) -> Any:
    """A TFMessage with one transform, any values (also invalid ones)."""
    vector3 = message_class("geometry_msgs/msg/Vector3")
    quaternion = message_class("geometry_msgs/msg/Quaternion")
    transform = message_class("geometry_msgs/msg/Transform")(
        translation=vector3(x=xyz[0], y=xyz[1], z=xyz[2]),
        rotation=quaternion(x=xyzw[0], y=xyzw[1], z=xyzw[2], w=xyzw[3]),
    )
    stamped = message_class("geometry_msgs/msg/TransformStamped")(
        header=make_header(stamp_ns, parent), child_frame_id=child, transform=transform)
    return message_class("tf2_msgs/msg/TFMessage")(transforms=[stamped])


def assert_every_rgb_frame_accounted(result) -> None:
    """The accounting guarantee: labelled + dropped-by-reason = RGB messages in the bag."""
    assert result.frames + sum(result.dropped.values()) == result.rgb_messages
