"""What the live node relies on, tested without ROS: CDR in and out, lifecycle, run-time
parameters, node-relative topics, output QoS, descriptors, and logging that cannot raise.

The rclpy shell only moves bytes: raw subscriptions hand the core CDR, and it publishes the
CDR the core returns. So a fake transport that does the same (bytes in, bytes out) exercises
every line of message code the live node runs; an independent decoder (mcap_ros2) reads what
the core published.
"""

from __future__ import annotations

import inspect
import logging
import time

import pytest
from conftest import FakeSegmenter

from mlesam_ros.bench.frame import synthetic_job
from mlesam_ros.node.descriptors import descriptor_fields
from mlesam_ros.node.log import SeverityLogger
from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.config import DEFAULT_PARAMETERS, PARAMETERS
from mlesam_ros.pipeline.core import SegmentationCore
from mlesam_ros.pipeline.tf_buffer import TfBuffer


class RclpyLikeLogger:
    """Mimics rclpy: a call site (caller's file, function, line) keeps its first severity."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str]] = []
        self._sites: dict[tuple, str] = {}

    def _log(self, severity: str, message: str) -> None:
        caller = inspect.currentframe().f_back.f_back
        site = (caller.f_code.co_filename, caller.f_code.co_name, caller.f_lineno)
        if self._sites.setdefault(site, severity) != severity:
            raise ValueError("Logger severity cannot be changed between calls.")
        self.records.append((severity, message))

    def debug(self, message: str) -> None:
        self._log("debug", message)

    def info(self, message: str) -> None:
        self._log("info", message)

    def warning(self, message: str) -> None:
        self._log("warning", message)

    def error(self, message: str) -> None:
        self._log("error", message)

    def fatal(self, message: str) -> None:
        self._log("fatal", message)


class BytesPublisher:
    def __init__(self, topic: str, msgtype: str, qos: dict) -> None:
        self.topic, self.msgtype, self.qos = topic, msgtype, qos
        self.sent: list[bytes] = []

    def publish(self, data: bytes) -> None:
        assert isinstance(data, bytes), "the core must hand the shell CDR bytes"
        self.sent.append(data)

    def has_subscribers(self) -> bool:
        return True


class BytesTransport:
    """NodeIO like the rclpy shell: raw CDR callbacks, byte publishers, a tracked lifetime."""

    def __init__(self, parameters: dict, now_ns: int, tf: TfBuffer) -> None:
        self.logger = SeverityLogger(RclpyLikeLogger())
        self._parameters = dict(parameters)
        self.now = now_ns
        self.tf = tf
        self.subscriptions: dict[str, tuple[str, object]] = {}
        self.publishers: dict[str, BytesPublisher] = {}
        self.timers: list = []

    def parameters(self):
        return self._parameters

    def now_ns(self) -> int:
        return self.now

    def subscribe(self, topic, msgtype, callback, reliability) -> None:
        self.subscriptions[topic] = (msgtype, callback)

    def create_publisher(self, topic, msgtype, latched=False, reliability="reliable", depth=1):
        publisher = BytesPublisher(
            topic, msgtype, {"latched": latched, "reliability": reliability, "depth": depth}
        )
        self.publishers[topic] = publisher
        return publisher

    def create_timer(self, period_ns, callback) -> None:
        self.timers.append((period_ns, callback))

    def release(self) -> None:
        """What the rclpy shell does on deactivate: destroy everything it created."""
        self.subscriptions, self.publishers, self.timers = {}, {}, []

    def lookup_transform(self, target_frame, source_frame, stamp_ns, timeout_ns):
        return self.tf.lookup(target_frame, source_frame, stamp_ns)

    def feed(self, job) -> None:
        """Publish one synthetic frame's messages as CDR onto the subscribed topics."""
        config = DEFAULT_PARAMETERS
        for key, message in job.infos.items():
            msgtype, callback = self.subscriptions[config[f"topics.{key}_info"]]
            callback(m.encode(message, msgtype))
        for key in ("depth", "thermal", "points", "rgb"):
            msgtype, callback = self.subscriptions[config[f"topics.{key}"]]
            callback(memoryview(m.encode(job.messages[key], msgtype)))


@pytest.fixture(scope="module")
def job_and_tf():
    return synthetic_job((60, 80))


def make_core(job_and_tf, **parameters):
    job, tf = job_and_tf
    transport = BytesTransport(parameters, job.stamp_ns, tf)
    core = SegmentationCore(transport, threaded=False, segmenter=FakeSegmenter())
    return core, transport, job


def test_cdr_in_cdr_out_decodes_with_mcap_ros2(job_and_tf, tmp_path) -> None:
    from mcap.reader import make_reader
    from mcap.writer import Writer
    from mcap_ros2.decoder import DecoderFactory

    core, transport, job = make_core(job_and_tf)
    core.configure()
    transport.feed(job)
    core.publish_diagnostics()
    store = m.ensure_vision_msgs()
    path = tmp_path / "live.mcap"
    with path.open("wb") as stream:
        writer = Writer(stream)
        writer.start()
        for topic, publisher in transport.publishers.items():
            text, _ = store.generate_msgdef(publisher.msgtype, ros_version=2)
            schema = writer.register_schema(publisher.msgtype, "ros2msg", text.encode())
            channel = writer.register_channel(topic, "cdr", schema)
            for index, data in enumerate(publisher.sent):
                writer.add_message(channel, index, data, index)
        writer.finish()
    decoded: dict[str, list] = {}
    with path.open("rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        for _, channel, _, message in reader.iter_decoded_messages():
            decoded.setdefault(channel.topic, []).append(message)
    (labels,) = decoded[m.LABELS_OUT]
    rgb = job.messages["rgb"]
    assert (labels.header.stamp.sec, labels.header.stamp.nanosec) == (
        rgb.header.stamp.sec,
        rgb.header.stamp.nanosec,
    )
    assert (labels.height, labels.width, labels.encoding) == (60, 80, "mono8")
    assert set(bytes(labels.data)) <= set(range(25)) and len(set(bytes(labels.data))) > 1
    (info,) = decoded[m.LABEL_INFO_OUT]
    assert [c.class_name for c in info.class_map] == [f"c{i}" for i in range(25)]
    (diagnostics,) = decoded[m.DIAGNOSTICS_TOPIC]
    levels = {status.name: status.level for status in diagnostics.status}
    # DiagnosticStatus.level is a ROS byte: the live bug was an int the rclpy class refused.
    assert set(levels) == {"/mlesam: pipeline"} | {
        f"/mlesam: {key}" for key in ("rgb", "depth", "thermal", "points")
    }
    assert levels["/mlesam: rgb"] == m.OK and levels["/mlesam: points"] == m.OK
    assert "label" in [field.name for field in decoded[m.LABELED_POINTS_OUT][0].fields]


def test_outputs_are_node_relative_with_output_qos(job_and_tf) -> None:
    core, transport, _ = make_core(job_and_tf, **{"qos.output": "best_effort",
                                                 "qos.output_depth": 3})
    core.configure()
    pubs = transport.publishers
    assert set(pubs) == {m.LABELS_OUT, m.LABELS_COLOR_OUT, m.CONFIDENCE_OUT,
                         m.LABELED_POINTS_OUT, m.LABEL_INFO_OUT, m.DIAGNOSTICS_TOPIC}
    for topic in (m.LABELS_OUT, m.LABELS_COLOR_OUT, m.CONFIDENCE_OUT, m.LABELED_POINTS_OUT):
        assert pubs[topic].qos == {"latched": False, "reliability": "best_effort", "depth": 3}
    assert pubs[m.LABEL_INFO_OUT].qos["latched"] is True
    assert m.DIAGNOSTICS_TOPIC == "/diagnostics"  # global, for diagnostic_aggregator


def test_namespaces_and_node_names_move_every_output_and_none_collide() -> None:
    outputs = (m.LABELS_OUT, m.LABELS_COLOR_OUT, m.LABEL_INFO_OUT, m.CONFIDENCE_OUT,
               m.LABELED_POINTS_OUT)
    default = {m.resolve_topic(topic) for topic in outputs}
    front = {m.resolve_topic(topic, "mlesam", "front") for topic in outputs}
    rear = {m.resolve_topic(topic, "mlesam_rear", "/") for topic in outputs}
    assert m.LABELS_TOPIC == "/mlesam/labels" and "/front/mlesam/labels" in front
    assert "/mlesam_rear/labels" in rear
    assert len(default | front | rear) == 3 * len(outputs)
    assert m.resolve_topic(m.DIAGNOSTICS_TOPIC, "mlesam", "front") == "/diagnostics"
    assert m.resolve_topic("camera/image_raw", "mlesam", "/front/") == "/front/camera/image_raw"


def test_lifecycle_inputs_and_outputs_stop_and_resume(job_and_tf) -> None:
    core, transport, job = make_core(job_and_tf)
    core.configure(activate=False)
    assert not transport.subscriptions and not transport.publishers and not core.active
    core.activate()
    transport.feed(job)
    assert len(transport.publishers[m.LABELS_OUT].sent) == 1
    callbacks = dict(transport.subscriptions)
    core.deactivate()
    transport.release()
    # A callback already queued in the executor when deactivating is ignored, not processed.
    msgtype, late = callbacks[DEFAULT_PARAMETERS["topics.rgb"]]
    late(m.encode(job.messages["rgb"], msgtype))
    assert core.stats.published == 1 and core.stats.callback_errors == 0
    core.activate()
    transport.feed(job)
    assert len(transport.publishers[m.LABELS_OUT].sent) == 1  # a fresh publisher
    assert core.stats.published == 2
    core.cleanup()
    assert core.segmenter is None and not core.active


def test_lifecycle_frees_the_model_it_loaded(job_and_tf, monkeypatch) -> None:
    import mlesam_ros.pipeline.core as core_module

    loaded = []
    monkeypatch.setattr(core_module, "open_segmenter",
                        lambda config: loaded.append(FakeSegmenter()) or loaded[-1])
    job, tf = job_and_tf
    core = SegmentationCore(BytesTransport({}, job.stamp_ns, tf), threaded=True)
    core.configure()
    core.cleanup()
    core.configure()
    core.cleanup()
    assert [segmenter.closed for segmenter in loaded] == [1, 1]


def test_dynamic_parameters_change_behaviour_and_bad_ones_are_refused(job_and_tf) -> None:
    core, transport, job = make_core(job_and_tf)
    core.configure()
    transport.feed(job)
    overlay = transport.publishers[m.LABELS_COLOR_OUT].sent[-1]
    core.apply_parameters({"output.overlay_alpha": 1.0, "sync.timeout_s": 0.2})
    assert core.config.overlay_alpha == 1.0 and core.path.config.overlay_alpha == 1.0
    assert core.sync.config.timeout_ns == 200_000_000
    transport.feed(job)
    assert transport.publishers[m.LABELS_COLOR_OUT].sent[-1] != overlay
    core.apply_parameters({"output.confidence": "false"})  # text 'false' is False
    sent = len(transport.publishers[m.CONFIDENCE_OUT].sent)
    transport.feed(job)
    assert len(transport.publishers[m.CONFIDENCE_OUT].sent) == sent
    with pytest.raises(ValueError, match=r"output.overlay_alpha: must be in \[0.0, 1.0\]"):
        core.apply_parameters({"output.overlay_alpha": 1.5})
    with pytest.raises(ValueError, match=r"topics\.rgb: static .*cleanup"):
        core.apply_parameters({"topics.rgb": "/front/image_raw"})
    with pytest.raises(ValueError, match=r"lidar\.dilation: must be in"):
        core.apply_parameters({"lidar.dilation": -1})
    assert core.config.overlay_alpha == 1.0 and core.config.topics["rgb"] != "/front/image_raw"
    core.cleanup()
    core.apply_parameters({"topics.rgb": "/front/image_raw"})  # unconfigured: accepted


def test_diagnostics_period_applies_at_run_time(job_and_tf) -> None:
    core, transport, _ = make_core(job_and_tf, **{"diagnostics.period_s": 1.0})
    core.configure()
    diagnostics = transport.publishers[m.DIAGNOSTICS_TOPIC]
    start = transport.now
    for step in range(1, 21):  # 2 s of 0.1 s polls
        transport.now = start + step * 100_000_000
        core.poll()
    assert len(diagnostics.sent) == 2
    core.apply_parameters({"diagnostics.period_s": 0.2})
    for step in range(21, 41):
        transport.now = start + step * 100_000_000
        core.poll()
    assert len(diagnostics.sent) == 2 + 10


def test_logging_never_raises_when_one_line_logs_two_severities(job_and_tf) -> None:
    fake = RclpyLikeLogger()
    with pytest.raises(ValueError, match="severity cannot be changed"):  # the fake is faithful
        for level in ("warning", "error"):
            getattr(fake, level)("x")
    logger = SeverityLogger(RclpyLikeLogger())
    for level in ("warning", "error", "info", "fatal", "debug", "warning"):
        logger.log(level, f"at {level}")
    assert [severity for severity, _ in logger._logger.records] == [
        "warning", "error", "info", "fatal", "debug", "warning"]
    core, transport, _ = make_core(job_and_tf)
    core.configure()
    core._log_once("warning", "a", "first")  # the same line in the core, two severities
    core._log_once("error", "b", "second")
    records = transport.logger._logger.records
    # The node name is the logger's to print (rclpy does), never repeated in the text.
    assert ("warning", "first") in records and ("error", "second") in records


def test_a_logger_that_throws_does_not_take_the_caller_down(capsys) -> None:
    class Broken:
        def error(self, message):
            raise RuntimeError("rcutils not initialised")

    SeverityLogger(Broken()).error("frame lost?")
    assert "frame lost?" in capsys.readouterr().err
    SeverityLogger(logging.getLogger("x")).fatal("critical works for logging.Logger")


def test_descriptors_carry_type_range_and_static_hint() -> None:
    dilation = descriptor_fields("lidar.dilation")
    assert dilation["type"] == "PARAMETER_INTEGER" and dilation["integer_range"] == (0, 50)
    assert "[set live]" in dilation["description"]
    timeout = descriptor_fields("sync.timeout_s")
    assert timeout["type"] == "PARAMETER_DOUBLE"
    assert timeout["floating_point_range"] == (1e-6, 60.0)
    topic = descriptor_fields("topics.rgb")
    assert topic["type"] == "PARAMETER_STRING" and "static" in topic["description"]
    assert "integer_range" not in topic and "floating_point_range" not in topic
    assert descriptor_fields("extrinsics.rgb_from_points")["type"] == "PARAMETER_DOUBLE_ARRAY"
    assert descriptor_fields("model.backend")["additional_constraints"] == (
        "allowed: from auto, tensorrt, onnxruntime, torch")
    for name in PARAMETERS:  # every parameter maps to a ROS type
        assert descriptor_fields(name)["type"].startswith("PARAMETER_")


def test_frames_pending_at_deactivation_and_sync_drops_stay_counted(job_and_tf) -> None:
    # Every RGB message is labelled or counted once, also across a new synchroniser.
    core, transport, job = make_core(job_and_tf)
    core.configure()
    msgtype, on_rgb = transport.subscriptions[DEFAULT_PARAMETERS["topics.rgb"]]
    rgb = m.encode(job.messages["rgb"], msgtype)
    on_rgb(rgb)  # waits in the synchroniser for depth, thermal and LiDAR (or the timeout)
    on_rgb(rgb)  # the same stamp again: the synchroniser drops it (duplicate_stamp)
    assert core.stats.published == 0
    assert core.dropped_frames() == {"duplicate_stamp": 1}
    core.deactivate()
    assert core.dropped_frames() == {"duplicate_stamp": 1, "stopped": 1}
    transport.release()
    core.activate()  # counts survive re-activation
    transport.feed(job)  # the whole frame this time: labelled
    assert core.stats.published == 1
    assert core.dropped_frames() == {"duplicate_stamp": 1, "stopped": 1}


def test_cleanup_configure_activate_labels_as_the_first_activation(job_and_tf) -> None:
    """Live (threaded) lifecycle: after cleanup → configure → activate every frame is labelled."""
    from dataclasses import replace

    job, tf = job_and_tf
    transport = BytesTransport({}, job.stamp_ns, tf)
    core = SegmentationCore(transport, threaded=True, segmenter=FakeSegmenter())

    def drive(first_stamp: int) -> int:
        labels = []
        for index in range(6):
            stamp = first_stamp + index * 100_000_000
            messages = {key: replace(msg, header=replace(msg.header, stamp=replace(
                msg.header.stamp, sec=stamp // 10**9, nanosec=stamp % 10**9)))
                for key, msg in job.messages.items()}  # fmt: skip
            transport.now = stamp
            transport.feed(replace(job, messages=messages))
            deadline = time.monotonic() + 10
            while len(transport.publishers[m.LABELS_OUT].sent) <= len(labels) and (
                    time.monotonic() < deadline):  # fmt: skip
                time.sleep(0.01)
            labels = list(transport.publishers[m.LABELS_OUT].sent)
        return len(labels)

    core.configure()
    assert drive(job.stamp_ns) == 6
    core.deactivate()
    transport.release()
    core.cleanup()
    core.configure(activate=False)
    core.activate()
    assert drive(job.stamp_ns + 10 * 10**9) == 6
    core.cleanup()
