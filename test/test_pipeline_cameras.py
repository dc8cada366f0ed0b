"""Several cameras in one node core: parameters, per-camera sync, batches, outputs, the cloud.

A surround rig of the synthetic street (three cameras, one LiDAR) is fed as CDR bytes, as
the rclpy node and the DDS transport hand them to the core, on a clock the test moves.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import FakeSegmenter

from mlesam_ros.data.export import camera_parameters, surround_messages, surround_tf_static
from mlesam_ros.data.synth.surround import SurroundDrive, surround_rig
from mlesam_ros.msgs import header_stamp_ns, matrices_to_tf_message, pointcloud2_to_array
from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.config import NodeConfig, check_update, parameter_names
from mlesam_ros.pipeline.core import SegmentationCore
from mlesam_ros.pipeline.fusion import CAMERA_FIELD
from mlesam_ros.pipeline.tf_buffer import TfBuffer

MS = 1_000_000


class Publisher:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def publish(self, data: bytes) -> None:
        self.sent.append(data)

    def has_subscribers(self) -> bool:
        return True


class RigTransport:
    """NodeIO that hands the core CDR bytes and keeps what it publishes, on a test clock."""

    def __init__(self, parameters: dict, tf: TfBuffer) -> None:
        self.logger = logging.getLogger("test.cameras")
        self._parameters = parameters
        self.now = 0
        self.tf = tf
        self.subscriptions: dict[str, list] = {}
        self.publishers: dict[str, Publisher] = {}
        self.timers: list = []

    def parameters(self):
        return self._parameters

    def now_ns(self) -> int:
        return self.now

    def subscribe(self, topic, msgtype, callback, reliability) -> None:
        self.subscriptions.setdefault(topic, []).append((msgtype, callback))

    def create_publisher(self, topic, msgtype, latched=False, reliability="reliable", depth=1):
        self.publishers[m.resolve_topic(topic)] = publisher = Publisher()
        return publisher

    def create_timer(self, period_ns, callback) -> None:
        self.timers.append(callback)

    def lookup_transform(self, target, source, stamp_ns, timeout_ns):
        return self.tf.lookup(target, source, stamp_ns)

    def deliver(self, topic: str, msgtype: str, message, at_ns: int | None = None) -> None:
        if at_ns is not None:
            self.now = at_ns
        for _, callback in self.subscriptions.get(topic, []):
            callback(m.encode(message, msgtype))

    def tick(self, to_ns: int) -> None:
        self.now = to_ns
        for timer in self.timers:
            timer()

    def sent(self, topic: str) -> list:
        publisher = self.publishers.get(topic)
        return [] if publisher is None else publisher.sent


class BatchSegmenter(FakeSegmenter):
    """The fake model with a batch call: row r gets confidence 0.9 - 0.2 r; batches recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[np.ndarray] = []

    def segment_batch(self, images, present):
        self.batches.append(present.copy())
        results = []
        for row in range(images.shape[0]):
            one = self.segment(images[row : row + 1], present[row : row + 1])
            confidence = np.full(self.input_size, 0.9 - 0.2 * row, np.float32)
            # Each row its own labels, still the model's class ids (the output is checked).
            labels = (one.labels + row) % len(self.class_names)
            results.append(SimpleNamespace(labels=labels, confidence=confidence))
        return results


@pytest.fixture(scope="module")
def surround():
    """Three cameras (front, left, rear) at 160x120 and a 16-beam LiDAR: rig and 3 frames."""
    rig = surround_rig(3, 160, 120, lidar_beams=16, lidar_azimuth_steps=256)
    return rig, list(SurroundDrive(seed=4, rig=rig).frames(3))


def make_core(surround, segmenter=None, **parameters):
    rig, _ = surround
    tf = TfBuffer()
    topic, _, transforms = surround_tf_static(rig)
    tf.feed(topic, matrices_to_tf_message(transforms, 0))
    transport = RigTransport({**camera_parameters(rig), **parameters}, tf)
    core = SegmentationCore(transport, threaded=False, segmenter=segmenter or BatchSegmenter())
    core.configure()
    return core, transport


def messages_of(frame, camera: str | None) -> list:
    """The frame's messages of one camera (``None``: the LiDAR), in stamp order."""
    prefix = None if camera is None else f"/{camera}/"
    return [item for item in surround_messages(frame)
            if (item[0].startswith(prefix) if prefix else item[0] == "/lidar/points")]


def feed(transport, items, delay_ns: int = MS) -> None:
    for topic, msgtype, message, stamp in items:
        transport.deliver(topic, msgtype, message, max(transport.now, stamp + delay_ns))


# -- parameters -------------------------------------------------------------------------------


def test_camera_list_gives_each_camera_its_topics_and_the_shared_lidar() -> None:
    config = NodeConfig.from_parameters({
        "cameras.names": ["front", "rear"], "cameras.rear.rgb": "/back/image",
        "cameras.rear.offset_points_s": -0.04, "cameras.front.timeout_s": 0.2,
        "topics.points": "/os1/points"})  # fmt: skip
    assert [c.name for c in config.cameras] == ["front", "rear"]
    front, rear = (config.camera_view(camera) for camera in config.cameras)
    assert front.topics == {"rgb": "/front/image_raw", "depth": "", "thermal": "",
                            "points": "/os1/points"}  # fmt: skip
    assert rear.topics["rgb"] == "/back/image" and rear.info_topics["rgb"] == "/rear/camera_info"
    assert rear.offsets_ns["points"] == -40_000_000 and front.offsets_ns["points"] == 0
    assert front.timeout_ns == 200_000_000 and rear.timeout_ns == config.timeout_ns
    assert front.enabled_inputs == ("rgb", "points") and front.cameras == ()
    # Comma-separated text is the same list (a launch argument, `ros2 param set`).
    text = NodeConfig.from_parameters({"cameras.names": "front, rear"})
    assert [(c.name, c.index) for c in text.cameras] == [("front", 0), ("rear", 1)]
    assert "cameras.rear.rgb_from_points" in parameter_names({"cameras.names": "front,rear"})


def test_one_camera_configuration_has_no_camera_list() -> None:
    config = NodeConfig.from_parameters({})
    assert config.cameras == () and config.topics["rgb"] == "/camera/image_raw"


@pytest.mark.parametrize(
    ("parameters", "needles"),
    [
        ({"cameras.names": "front,front"}, ["cameras.names", "twice"]),
        ({"cameras.names": "front left"}, ["cameras.names", "letters"]),
        ({"cameras.names": "names"}, ["cameras.names"]),
        ({"cameras.names": "front", "cameras.rear.rgb": "/x"},
         ["cameras.rear.rgb", "not in cameras.names"]),
        ({"cameras.names": "front", "cameras.front.rbg": "/x"}, ["cameras.front.rbg", "rgb_info"]),
        ({"cameras.names": "front", "cameras.front.timeout_s": -1},
         ["cameras.front.timeout_s"]),
        ({"cameras.names": [1, 2]}, ["cameras.names"]),
    ],
    ids=["twice", "space", "reserved", "unlisted", "typo", "range", "not-text"],
)
def test_bad_camera_parameters_name_the_parameter(parameters, needles) -> None:
    with pytest.raises(ValueError) as caught:
        NodeConfig.from_parameters(parameters)
    for needle in needles:
        assert needle in str(caught.value)
    assert "\n" not in str(caught.value)


def test_per_camera_offsets_change_live_and_topics_do_not() -> None:
    current = {"cameras.names": "front"}
    assert check_update({"cameras.front.offset_points_s": 0.01}, current, True)
    with pytest.raises(ValueError, match=r"cameras\.front\.rgb: static"):
        check_update({"cameras.front.rgb": "/x"}, current, True)
    with pytest.raises(ValueError, match=r"cameras\.names: static"):
        check_update({"cameras.names": "front,left"}, current, True)


# -- sync and batches ---------------------------------------------------------------------------


def test_one_late_camera_never_delays_another(surround) -> None:
    _, frames = surround
    core, transport = make_core(surround, **{"cameras.batch_window_s": 0.0})
    first = frames[0]
    feed(transport, messages_of(first, None) + messages_of(first, "front"))
    # Front is labelled on its own, at once: left and rear have sent nothing.
    assert len(transport.sent("/mlesam/front/labels")) == 1
    assert transport.sent("/mlesam/left/labels") == []
    # Left's RGB arrives without its depth: left waits in its own synchroniser...
    left = messages_of(first, "left")
    feed(transport, [item for item in left if "depth" not in item[0]])
    assert transport.sent("/mlesam/left/labels") == []
    # ...while front's next frame goes straight through.
    second = frames[1]
    feed(transport, messages_of(second, None) + messages_of(second, "front"))
    assert len(transport.sent("/mlesam/front/labels")) == 2
    # Left's timeout (its own) releases its frame without depth, stamped with left's RGB.
    transport.tick(transport.now + core.config.timeout_ns + MS)
    (labels,) = transport.sent("/mlesam/left/labels")
    header = m.decode(labels, m.IMAGE).header
    assert header.frame_id == "left_camera_optical_frame"
    assert header.stamp.sec * 10**9 + header.stamp.nanosec == first.stamps_ns["left"]
    assert core.rig.dropped_by_camera() == {"front": {}, "left": {}, "rear": {}}


def test_batch_holds_the_cameras_ready_within_the_window_not_absent_ones(surround) -> None:
    _, frames = surround
    segmenter = BatchSegmenter()
    core, transport = make_core(surround, segmenter,
                                **{"cameras.batch_window_s": 0.02,
                                   "cameras.left.depth": ""})  # fmt: skip
    frame = frames[0]
    front, left = messages_of(frame, "front"), messages_of(frame, "left")
    left_infos = [item for item in left if "image_raw" not in item[0]]
    feed(transport, messages_of(frame, None) + front + left_infos)
    # Front is ready; left's RGB is not even here, rear is dead: nothing to wait for.
    assert [len(batch) for batch in segmenter.batches] == [1]
    # Next frame: left's RGB arrives first and waits for the sweep, front completes; both
    # synchronisers then complete within the window and run as one batch.
    frame = frames[1]
    lidar = messages_of(frame, None)
    feed(transport, messages_of(frame, "left"))
    feed(transport, messages_of(frame, "front"))
    assert len(segmenter.batches) == 1  # front and left wait for the sweep
    feed(transport, lidar)
    assert [len(batch) for batch in segmenter.batches] == [1, 2]
    # Rows follow cameras.names; left has no depth configured: absent in its row only.
    depth = core.path.modalities.index("depth")
    assert segmenter.batches[1][:, depth].tolist() == [True, False]
    assert len(transport.sent("/mlesam/front/labels")) == 2
    assert len(transport.sent("/mlesam/left/labels")) == 1


def test_a_camera_on_its_way_is_waited_for_at_most_the_window(surround) -> None:
    _, frames = surround
    segmenter = BatchSegmenter()
    _, transport = make_core(surround, segmenter, **{"cameras.batch_window_s": 0.02})
    frame = frames[0]
    feed(transport, messages_of(frame, None))
    rear_rgb = [i for i in messages_of(frame, "rear") if "depth" not in i[0]]
    feed(transport, rear_rgb)  # rear's RGB waits for its depth in its synchroniser
    feed(transport, messages_of(frame, "front"))
    assert segmenter.batches == []  # front waits: rear's frame is on its way
    ready = transport.now
    transport.tick(ready + 10 * MS)
    assert segmenter.batches == []
    transport.tick(ready + 21 * MS)  # the window has passed: front runs alone
    assert [len(batch) for batch in segmenter.batches] == [1]
    assert len(transport.sent("/mlesam/front/labels")) == 1


def test_latest_frame_wins_per_camera(surround) -> None:
    _, frames = surround
    segmenter = BatchSegmenter()
    core, transport = make_core(surround, segmenter, **{"cameras.batch_window_s": 0.5,
                                                        "sync.timeout_s": 0.5})  # fmt: skip
    feed(transport, [i for i in messages_of(frames[0], "rear") if "depth" not in i[0]])
    for frame in frames[:2]:  # two front frames while rear's frame keeps the batch open
        feed(transport, messages_of(frame, None) + messages_of(frame, "front"))
    assert segmenter.batches == []
    core.flush()  # rear times out without depth: one batch, front's newer frame and rear's
    assert [len(batch) for batch in segmenter.batches] == [2]
    assert core.rig.dropped_by_camera()["front"] == {"worker_busy": 1}
    assert core.rig.dropped_by_camera()["rear"] == {}
    (labels,) = transport.sent("/mlesam/front/labels")
    stamp = m.decode(labels, m.IMAGE).header.stamp
    assert stamp.sec * 10**9 + stamp.nanosec == frames[1].stamps_ns["front"]


# -- outputs ------------------------------------------------------------------------------------


def test_each_camera_has_its_outputs_and_one_fused_cloud_labels_each_point_once(surround):
    _, frames = surround
    core, transport = make_core(surround, **{"cameras.batch_window_s": 0.05})
    for frame in frames[:2]:
        feed(transport, surround_messages(frame))
    core.flush()
    for camera in ("front", "left", "rear"):
        for output in ("labels", "labels_color", "confidence"):
            assert len(transport.sent(f"/mlesam/{camera}/{output}")) == 2, (camera, output)
        (info,) = transport.sent(f"/mlesam/{camera}/label_info")
        assert len(m.decode(info, m.LABEL_INFO).class_map) == 25
    assert not {"/mlesam/labels", "/mlesam/labels_color"} & set(transport.publishers)
    clouds = transport.sent("/mlesam/labeled_points")
    assert len(clouds) == 2
    message = m.decode(clouds[-1], m.POINTCLOUD2)
    assert message.header.frame_id == "lidar"
    points = pointcloud2_to_array(message)
    assert {"x", "y", "z", "intensity", "label", "rgb", CAMERA_FIELD} <= set(points.dtype.names)
    xyz = np.stack([points[k] for k in "xyz"], axis=1)
    assert np.unique(xyz, axis=0).shape[0] == len(points)  # no point twice
    views = {lane.index: lane.last_points[1] for lane in core.rig.lanes}
    union = set().union(*(set(view.index.tolist()) for view in views.values()))
    assert len(points) == len(union) and set(np.unique(points[CAMERA_FIELD])) == {0, 1, 2}
    # The fake model is surer of the first camera of each batch (0.9 > 0.7 > 0.5): a point
    # two cameras see takes the first one's label.
    front, left = set(views[0].index.tolist()), set(views[1].index.tolist())
    assert front & left, "neighbouring cameras overlap"
    sweep = core.rig.lanes[0].last_points[0]
    shared = sorted(front & left)
    shared_xyz = np.asarray(sweep.xyz)[shared]
    taken = {tuple(row): camera for row, camera in zip(xyz.tolist(), points[CAMERA_FIELD],
                                                         strict=True)}  # fmt: skip
    assert {taken[tuple(row)] for row in shared_xyz.tolist()} == {0}


def test_diagnostics_per_camera_and_per_shared_sensor_with_a_dead_camera(surround) -> None:
    _, frames = surround
    core, transport = make_core(surround, **{"cameras.batch_window_s": 0.0})
    for frame in frames[:2]:
        feed(transport, [i for i in surround_messages(frame) if not i[0].startswith("/rear/")])
    core.flush()
    levels = {s.name: (s.level, s.message) for s in core.diagnostics().status}
    expected = {"/mlesam: pipeline", "/mlesam: points"} | {
        f"/mlesam: {camera}/{what}" for camera in ("front", "left", "rear")
        for what in ("pipeline", "rgb", "depth")}  # fmt: skip
    assert set(levels) == expected
    assert levels["/mlesam: front/rgb"] == (m.OK, "fused")
    assert levels["/mlesam: rear/rgb"][0] == m.STALE
    assert levels["/mlesam: points"] == (m.OK, "fused by front, left")
    values = {s.name: {kv.key: kv.value for kv in s.values} for s in core.diagnostics().status}
    assert values["/mlesam: pipeline"]["cameras"] == "front,left,rear"
    assert values["/mlesam: front/pipeline"]["frames_published"] == "2"
    assert values["/mlesam: rear/pipeline"]["frames_published"] == "0"


def test_a_camera_dying_mid_drive_is_reported_while_the_others_go_on() -> None:
    rig = surround_rig(2, 96, 64, lidar_beams=8, lidar_azimuth_steps=128)
    frames = list(SurroundDrive(seed=2, rig=rig, dead={"left": 3}).frames(20))
    core, transport = make_core((rig, frames), **{"cameras.batch_window_s": 0.0})
    for frame in frames:
        feed(transport, surround_messages(frame))
        transport.tick(transport.now + 20 * MS)
    levels = {s.name: (s.level, s.message) for s in core.diagnostics().status}
    assert levels["/mlesam: front/rgb"] == (m.OK, "fused")
    assert levels["/mlesam: left/rgb"][0] == m.STALE
    assert levels["/mlesam: left/rgb"][1].startswith("no image for 1.")
    assert levels["/mlesam: left/pipeline"][0] == m.WARN
    # Its depth camera fuses into nothing now: not "OK, fused" from the last frame.
    assert levels["/mlesam: left/depth"][0] == m.WARN
    assert levels["/mlesam: left/depth"][1].startswith("not fused: the camera is silent")
    assert levels["/mlesam: front/depth"] == (m.OK, "fused")
    assert levels["/mlesam: points"] == (m.OK, "fused by front")  # left's last frame is old
    assert len(transport.sent("/mlesam/front/labels")) == 20
    assert len(transport.sent("/mlesam/left/labels")) == 3


def test_lifecycle_counts_frames_left_waiting_per_camera(surround) -> None:
    _, frames = surround
    core, transport = make_core(surround, **{"cameras.batch_window_s": 0.0})
    feed(transport, [i for i in messages_of(frames[0], "left") if "depth" not in i[0]])
    core.deactivate()
    assert core.rig.dropped_by_camera()["left"] == {"stopped": 1}
    assert core.dropped_frames() == {"stopped": 1}
    transport.subscriptions.clear()
    core.activate()
    feed(transport, surround_messages(frames[1]))
    assert len(transport.sent("/mlesam/left/labels")) == 1


def test_the_worker_thread_batches_the_cameras_and_stops_cleanly(surround) -> None:
    import time

    rig, frames = surround
    tf = TfBuffer()
    topic, _, transforms = surround_tf_static(rig)
    tf.feed(topic, matrices_to_tf_message(transforms, 0))
    segmenter = BatchSegmenter()
    transport = RigTransport({**camera_parameters(rig), "cameras.batch_window_s": 0.2}, tf)
    core = SegmentationCore(transport, threaded=True, segmenter=segmenter)
    core.configure()
    try:
        feed(transport, surround_messages(frames[0]))
        deadline = time.monotonic() + 10.0
        while core.stats.published < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert core.stats.published == 3
        assert sum(len(batch) for batch in segmenter.batches) == 3
        assert len(segmenter.batches) < 3  # the three cameras did not run one by one
    finally:
        core.cleanup()
    assert core.rig._worker is None


# -- replay -------------------------------------------------------------------------------------


def test_replay_labels_each_camera_as_a_one_camera_node_would(surround, tmp_path) -> None:
    """Same bag, same model: each camera's labels equal a one-camera replay's, frame by frame."""
    from conftest import read_bag

    from mlesam_ros.data.export import surround_topics, write_surround_bag
    from mlesam_ros.engine import resolve_default_checkpoint
    from mlesam_ros.replay.run import replay_bag

    rig, frames = surround
    bag = tmp_path / "surround"
    write_surround_bag(frames, bag)
    model = str(resolve_default_checkpoint().with_suffix(".onnx"))
    common = {"model.path": model, "model.threads": 1}
    result = replay_bag(bag, tmp_path / "rig", {**camera_parameters(rig), **common},
                        progress=False)  # fmt: skip
    summary = result.summary()
    assert result.frames == 9 and result.rgb_messages == 9
    assert {"camera:front", "camera:left", "camera:rear", "all"} <= set(summary["miou"])
    assert summary["dropped_by_camera"] == {"front": {}, "left": {}, "rear": {}}
    together = read_bag(tmp_path / "rig")
    assert len(together["/mlesam/labeled_points"]) == 3
    for camera in ("front", "left"):
        names = surround_topics(camera)
        alone = replay_bag(bag, tmp_path / camera, {
            **common, "topics.rgb": names["rgb"], "topics.rgb_info": names["rgb_info"],
            "topics.depth": names["depth"], "topics.depth_info": names["depth_info"],
            "topics.thermal": ""}, progress=False)  # fmt: skip
        assert alone.frames == 3
        single = [message for _, message in read_bag(tmp_path / camera)["/mlesam/labels"]]
        in_rig = [message for _, message in together[f"/mlesam/{camera}/labels"]]
        assert len(single) == len(in_rig) == 3
        for one, two in zip(single, in_rig, strict=True):
            assert header_stamp_ns(one) == header_stamp_ns(two)
            assert one.header.frame_id == two.header.frame_id
            np.testing.assert_array_equal(one.data, two.data)


def test_run_time_parameters_reach_every_camera(surround) -> None:
    _, frames = surround
    core, transport = make_core(surround, **{"cameras.batch_window_s": 0.0})
    left = core.rig.lanes[1]
    old_sync = left.sync
    core.apply_parameters({"cameras.left.offset_points_s": 0.01, "output.confidence": False})
    assert left.config.offsets_ns["points"] == 10_000_000 and left.sync is not old_sync
    assert core.rig.lanes[0].config.offsets_ns["points"] == 0
    feed(transport, surround_messages(frames[0]))
    core.flush()
    assert transport.sent("/mlesam/front/confidence") == []
    assert len(transport.sent("/mlesam/front/labels")) == 1
    with pytest.raises(ValueError, match=r"cameras\.left\.depth: static"):
        core.apply_parameters({"cameras.left.depth": "/x"})


# -- a rig with the node's other inputs and checks ----------------------------------------------


def test_compressed_cameras_are_read_through_their_transport(surround) -> None:
    from mlesam_ros.msgs.compressed import COMPRESSED_IMAGE, compress_image

    rig, frames = surround
    core, transport = make_core(surround, **{"cameras.batch_window_s": 0.0,
                                             "transport.rgb": "compressed"})  # fmt: skip
    for camera in rig.cameras:
        topic = f"/{camera}/image_raw/compressed"
        assert [msgtype for msgtype, _ in transport.subscriptions[topic]] == [COMPRESSED_IMAGE]
        assert f"/{camera}/image_raw" not in transport.subscriptions
    items = []
    for topic, msgtype, message, stamp in surround_messages(frames[0]):
        camera = topic.split("/")[1]
        if topic == f"/{camera}/image_raw":
            message = compress_image(frames[0].rgb[camera], "rgb8", stamp,
                                     message.header.frame_id, codec="png")  # fmt: skip
            topic, msgtype = f"{topic}/compressed", COMPRESSED_IMAGE
        items.append((topic, msgtype, message, stamp))
    feed(transport, items)
    core.flush()
    for camera in rig.cameras:
        (labels,) = transport.sent(f"/mlesam/{camera}/labels")
        assert m.decode(labels, m.IMAGE).header.frame_id == f"{camera}_camera_optical_frame"
    assert core.rig.dropped_by_camera() == {camera: {} for camera in rig.cameras}
    # Diagnostics name the topic each camera's RGB is read from.
    values = {s.name: {kv.key: kv.value for kv in s.values} for s in core.diagnostics().status}
    assert values["/mlesam: left/rgb"]["topic"] == "/left/image_raw/compressed"


def test_a_camera_with_a_corrupt_stamp_loses_that_frame_only(surround) -> None:
    _, frames = surround
    core, transport = make_core(surround, **{"cameras.batch_window_s": 0.0})
    items = []
    for topic, msgtype, message, stamp in surround_messages(frames[0]):
        if topic == "/left/image_raw":
            message.header.stamp.nanosec = 1_999_999_999  # not a time
        items.append((topic, msgtype, message, stamp))
    feed(transport, items)
    core.flush()
    assert transport.sent("/mlesam/left/labels") == []
    assert len(transport.sent("/mlesam/front/labels")) == 1
    assert core.rig.dropped_by_camera()["left"] == {"invalid_stamp": 1}
    assert core.dropped_frames() == {"invalid_stamp": 1}


class OutOfRangeSegmenter(BatchSegmenter):
    """The batch model whose second row holds class ids the model does not have."""

    def segment_batch(self, images, present):
        results = super().segment_batch(images, present)
        if len(results) > 1:
            results[1].labels = np.full_like(results[1].labels, 200)
        return results


def test_a_camera_whose_model_output_is_out_of_range_loses_only_its_frame(surround) -> None:
    _, frames = surround
    core, transport = make_core(surround, OutOfRangeSegmenter())
    feed(transport, surround_messages(frames[0]))
    core.flush()
    published = {camera: len(transport.sent(f"/mlesam/{camera}/labels"))
                 for camera in ("front", "left", "rear")}  # fmt: skip
    assert sorted(published.values()) == [0, 1, 1]
    (failed,) = [camera for camera, count in published.items() if count == 0]
    assert core.rig.dropped_by_camera()[failed] == {"inference_error": 1}
    levels = {s.name: (s.level, s.message) for s in core.diagnostics().status}
    assert levels["/mlesam: pipeline"][0] == m.ERROR
    assert "outside the model's 0..24" in levels["/mlesam: pipeline"][1]


def test_each_cameras_frame_is_timed_per_stage(surround) -> None:
    from mlesam_ros.pipeline.timing import STAGES

    _, frames = surround
    core, transport = make_core(surround)
    records = []
    core.listeners.append(lambda result, record: records.append(record))
    for frame in frames[:2]:
        feed(transport, surround_messages(frame))
    core.flush()
    assert {record.camera for record in records} == {"front", "left", "rear"}
    for record in records:
        assert set(record.stages_ms) == set(STAGES)  # every RGB's arrival is known here
        assert all(value >= 0 for value in record.stages_ms.values())
        assert record.processing_ms >= record.stages_ms["inference"]
    values = {s.name: {kv.key: kv.value for kv in s.values} for s in core.diagnostics().status}
    for name in ("/mlesam: pipeline", "/mlesam: front/pipeline"):
        assert float(values[name]["inference_p50_ms"]) >= 0, name


def test_a_params_file_keeps_each_cameras_parameters_and_names_a_misspelt_one(tmp_path) -> None:
    from mlesam_ros.pipeline.config import load_params_file

    path = tmp_path / "cameras.yaml"
    path.write_text("/**:\n  ros__parameters:\n    cameras:\n      names: [front, rear]\n"
                    "      front: {rgb: /f/image, rbg_info: /f/info}\n")  # fmt: skip
    warnings: list[str] = []
    values = load_params_file(path, warn=warnings.append)
    assert values == {"cameras.names": ["front", "rear"], "cameras.front.rgb": "/f/image"}
    assert len(warnings) == 1
    assert "'cameras.front.rbg_info'; did you mean 'cameras.front.rgb_info'?" in warnings[0]


def test_a_camera_parameter_for_a_camera_not_listed_is_reported() -> None:
    from mlesam_ros.pipeline.params_file import report_unknown_parameters

    warnings: list[str] = []
    names = ["cameras.names", "cameras.front.rgb", "cameras.rear.rgb", "cameras.front.rbg"]
    unknown = report_unknown_parameters(names, warnings.append, "-p", cameras=["front"])
    assert unknown == ["cameras.front.rbg", "cameras.rear.rgb"]
    assert "camera 'rear' is not in cameras.names [front]" in warnings[1]
