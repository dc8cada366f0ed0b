"""Bag replay without ROS: drive the node core from a recorded bag and record what it publishes.

:class:`BagTransport` implements :class:`~mlesam_ros.pipeline.interface.NodeIO` over a bag:
the clock is the bag's log time, timers fire in bag time between messages, ``/tf`` and
``/tf_static`` fill a :class:`~mlesam_ros.pipeline.tf_buffer.TfBuffer`, and every publication
is written to an output bag (rosbags ``Writer``, mcap or sqlite3) stamped with the bag time it
was published at. :func:`replay_bag` runs :class:`~mlesam_ros.pipeline.core.SegmentationCore`
through it with ``threaded=False`` (each synced frame is processed inside the callback that
completed it, through the same latest-frame slot), so a replay is deterministic and is the
node's behaviour under test. With ground truth on ``/mlesam/gt_labels`` it also scores mIoU.

Failure rules (README "Failure behaviour"): parameters, the bag's topics and the model are
checked before the output bag exists; the output is written to ``<out>.partial/`` and moved
to ``out`` only when the run completes, so a failed run leaves nothing and an interrupted
(or killed) one leaves a ``.partial`` folder that says what it is. Bag time never ticks
timers across a gap longer than :data:`MAX_TIMER_GAP_NS` (a message logged at time 0 before
``/clock`` arrived would otherwise fire them for every period since 1970).
"""

from __future__ import annotations

import collections
import logging
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlesam_ros.data.topics import GT_LABELS_TOPIC
from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.tf_buffer import TfBuffer

LOG = logging.getLogger("mlesam.replay")
STORAGES = ("mcap", "sqlite3")
TF_TOPIC, TF_STATIC_TOPIC = "/tf", "/tf_static"
MAX_TIMER_GAP_NS = 10_000_000_000
"""Longest stretch of bag time over which timers tick period by period; longer gaps jump."""


class ReplayInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a replay; the message says where the partial output is."""


def bag_storage(path: str | Path) -> str:
    """``mcap`` or ``sqlite3`` from a rosbag2 folder's files (or a single ``.mcap``/``.db3``)."""
    path = Path(path)
    files = [path] if path.is_file() else list(path.iterdir()) if path.is_dir() else []
    suffixes = {file.suffix for file in files}
    if ".mcap" in suffixes:
        return "mcap"
    if ".db3" in suffixes:
        return "sqlite3"
    raise ValueError(f"bag {path}: no .mcap or .db3 file found; is it a rosbag2 folder?")


class BagPublisher:
    """Writes each published CDR message to the output bag at the transport's current time."""

    def __init__(self, transport: BagTransport, topic: str, msgtype: str) -> None:
        self.transport, self.topic, self.msgtype = transport, topic, msgtype
        self.count = 0

    def publish(self, data: bytes) -> None:
        """Write ``data`` (CDR bytes from the core, exactly what the live node publishes)."""
        self.transport.write_raw(self.topic, self.msgtype, data)
        self.count += 1

    def has_subscribers(self) -> bool:
        """Return True: the output bag records everything the parameters enable."""
        return True


@dataclass
class _Timer:
    period_ns: int
    callback: Callable[[], None]
    due_ns: int | None = None


class BagTransport:
    """:class:`~mlesam_ros.pipeline.interface.NodeIO` over a bag: bag clock, output bag."""

    def __init__(self, writer: Any, parameters: Mapping[str, Any], logger: Any = LOG) -> None:
        self.logger = logger
        self._parameters = dict(parameters)
        self._writer = writer
        self._connections: dict[str, Any] = {}
        self._now = 0
        self._timers: list[_Timer] = []
        self.subscriptions: dict[str, list[Callable[[Any], None]]] = collections.defaultdict(list)
        self.subscribed_types: dict[str, str] = {}
        self.publishers: dict[str, BagPublisher] = {}
        self.tf = TfBuffer()
        self.max_timer_gap_ns = MAX_TIMER_GAP_NS
        self.clock_jumps = 0
        # Where transport-level problems (a rejected transform, a wrong message type) go; the
        # replay points it at the core so they show in /diagnostics.
        self.on_issue: Callable[[str, str, str], None] | None = None

    # NodeIO -----------------------------------------------------------------------------------
    def parameters(self) -> Mapping[str, Any]:
        """Return the parameter overrides given to the replay."""
        return self._parameters

    def now_ns(self) -> int:
        """Return the bag time of the message being delivered (or the timer firing)."""
        return self._now

    def subscribe(
        self, topic: str, msgtype: str, callback: Callable[[Any], None], reliability: str
    ) -> None:
        """Deliver ``topic``'s bag messages to ``callback`` (reliability is moot in a bag)."""
        self.subscriptions[topic].append(callback)
        self.subscribed_types[topic] = msgtype

    def create_publisher(
        self, topic: str, msgtype: str, latched: bool = False, **qos: Any
    ) -> BagPublisher:
        """Create an output topic in the output bag (``~/x`` named as the default node's)."""
        topic = m.resolve_topic(topic)
        publisher = BagPublisher(self, topic, msgtype)
        self.publishers[topic] = publisher
        return publisher

    def create_timer(self, period_ns: int, callback: Callable[[], None]) -> None:
        """Fire ``callback`` every ``period_ns`` of bag time."""
        self._timers.append(_Timer(int(period_ns), callback))

    def lookup_transform(
        self, target_frame: str, source_frame: str, stamp_ns: int, timeout_ns: int
    ) -> np.ndarray:
        """Look up in the bag's ``/tf`` and ``/tf_static`` (all of it read so far)."""
        return self.tf.lookup(target_frame, source_frame, stamp_ns)

    # replay driving ---------------------------------------------------------------------------
    def write_raw(self, topic: str, msgtype: str, data: bytes) -> None:
        """Write CDR ``data`` into the output bag at the current bag time."""
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, typestore=m.ensure_vision_msgs()
            )
        self._writer.write(self._connections[topic], self._now, data)

    def advance(self, now_ns: int) -> None:
        """Move the clock to ``now_ns``, firing every timer that falls due on the way.

        Across a gap longer than ``max_timer_gap_ns`` the clock jumps: each timer fires once
        at ``now_ns`` instead of once per period of the gap (a live node's timers do not
        catch up either when ``/clock`` jumps).
        """
        now_ns = int(now_ns)
        if self._timers and now_ns - self._now > self.max_timer_gap_ns:
            self.clock_jumps += 1
            if self.clock_jumps == 1:
                self.logger.warning(
                    f"mlesam: bag time jumps {(now_ns - self._now) / 1e9:.1f} s (from "
                    f"{self._now} ns to {now_ns} ns); timers fire once after the gap instead "
                    "of for every period in it"
                )
            self._now = now_ns
            for timer in self._timers:
                timer.due_ns = now_ns
        for timer in self._timers:
            if timer.due_ns is None:
                timer.due_ns = max(now_ns, self._now) + timer.period_ns
        while self._timers:
            timer = min(self._timers, key=lambda item: item.due_ns)
            if timer.due_ns > now_ns:
                break
            self._now = max(self._now, timer.due_ns)
            timer.due_ns += timer.period_ns
            timer.callback()
        self._now = max(self._now, now_ns)

    def report(self, topic: str, text: str, sensor: str = "tf") -> None:
        """Hand a transport-level problem to ``on_issue`` (or the log when nothing listens)."""
        if self.on_issue is not None:
            self.on_issue(sensor, topic, text)
        else:
            self.logger.warning(f"mlesam: {sensor} ({topic}): {text}")

    def deliver(self, topic: str, message: Any) -> None:
        """Hand one bag message to its subscribers (tf topics to the tf buffer too).

        ``message`` is CDR bytes or the message that :func:`mlesam_ros.pipeline.messages.
        decode` made of them (replay decodes once, up front, to count undecodable records);
        the core runs the same decoder on the bytes that the live node's raw subscriptions
        hand it, so both transports share one codec.
        """
        if topic in (TF_TOPIC, TF_STATIC_TOPIC):
            tf_message = m.decode(message, m.TF_MESSAGE)
            for problem in self.tf.add_message(tf_message, static=topic == TF_STATIC_TOPIC):
                self.report(topic, problem)
        for callback in self.subscriptions.get(topic, ()):
            callback(message)


@dataclass
class ReplayResult:
    """What a replay measured; ``summary()`` is the JSON form."""

    bag: Path
    out: Path
    rgb_messages: int = 0
    frames: int = 0
    presence: collections.Counter = field(default_factory=collections.Counter)
    latencies_ms: list[float] = field(default_factory=list)
    processing_ms: list[float] = field(default_factory=list)
    confusion: dict[str, Any] = field(default_factory=dict)
    published: dict[str, int] = field(default_factory=dict)
    issues: collections.Counter = field(default_factory=collections.Counter)
    dropped: dict[str, int] = field(default_factory=dict)
    backend: str = ""
    model: str = ""
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Plain-data summary (JSON-able)."""
        latency = np.asarray(self.latencies_ms, dtype=np.float64)
        processing = np.asarray(self.processing_ms, dtype=np.float64)

        def percentiles(values: np.ndarray) -> dict[str, float | None]:
            if not values.size:
                return {"p50": None, "p90": None, "p99": None, "mean": None}
            p50, p90, p99 = np.percentile(values, [50, 90, 99])
            return {
                "p50": round(float(p50), 2),
                "p90": round(float(p90), 2),
                "p99": round(float(p99), 2),
                "mean": round(float(values.mean()), 2),
            }

        miou = {group: matrix.summary()["miou"] for group, matrix in self.confusion.items()}
        return {
            "bag": str(self.bag),
            "out": str(self.out),
            "backend": self.backend,
            "model": self.model,
            "rgb_messages": self.rgb_messages,
            "frames": self.frames,
            "fused_modalities": dict(self.presence.most_common()),
            "latency_ms": percentiles(latency),
            "processing_ms": percentiles(processing),
            "miou": miou,
            "published": self.published,
            "issues": dict(self.issues.most_common()),
            "dropped_frames": dict(sorted(self.dropped.items())),
            "notes": self.notes,
        }

    def text(self) -> str:
        """Human-readable summary for the terminal."""
        data = self.summary()
        lines = [
            f"replayed {data['bag']} -> {data['out']} ({data['backend']}, {data['model']})",
            f"frames: {data['frames']} labelled of {data['rgb_messages']} RGB messages",
        ]
        lines.append("fused modalities:")
        lines += [f"  {combo:<32} {count:>5}" for combo, count in data["fused_modalities"].items()]
        for name in ("latency_ms", "processing_ms"):
            values = data[name]
            if values["p50"] is not None:
                lines.append(
                    f"{name.replace('_ms', '')} ms: p50 {values['p50']}, p90 "
                    f"{values['p90']}, p99 {values['p99']}, mean {values['mean']}"
                )
        if data["miou"]:
            lines.append("mIoU (ground truth on " + GT_LABELS_TOPIC + "):")
            lines += [
                f"  {group:<32} {'n/a' if v is None else f'{100 * v:.1f}%'}"
                for group, v in data["miou"].items()
            ]
        if data["dropped_frames"]:
            lines.append(
                "dropped RGB frames (reason: count): "
                + ", ".join(f"{key}: {count}" for key, count in data["dropped_frames"].items())
            )
        if data["issues"]:
            lines.append(
                "issues (sensor: count): "
                + ", ".join(f"{key}: {count}" for key, count in data["issues"].items())
            )
        lines += [f"note: {note}" for note in data["notes"]]
        return "\n".join(lines)


def combo_name(present: Mapping[str, bool]) -> str:
    """``rgb+depth+lidar`` style name of the fused modalities (``none`` if nothing)."""
    return "+".join(name for name, fused in present.items() if fused) or "none"


class _Scorer:
    """Pairs published labels with ground truth by stamp and accumulates confusion matrices."""

    def __init__(
        self, result: ReplayResult, num_classes: int, groups: Callable[[Any], Iterable[str]] | None
    ) -> None:
        self.result, self.num_classes, self.groups = result, num_classes, groups
        self.predictions: dict[int, tuple[np.ndarray, list[str]]] = {}
        self.truths: dict[int, np.ndarray] = {}
        self.disabled = False

    def prediction(self, stamp_ns: int, labels: np.ndarray, groups: list[str]) -> None:
        if stamp_ns in self.truths:
            self._score(labels, self.truths.pop(stamp_ns), groups)
        else:
            self.predictions[stamp_ns] = (labels, groups)

    def truth(self, message: Any) -> None:
        from mlesam_ros.msgs import header_stamp_ns, image_to_numpy

        stamp = header_stamp_ns(message)
        truth = np.array(image_to_numpy(message, GT_LABELS_TOPIC))
        if stamp in self.predictions:
            labels, groups = self.predictions.pop(stamp)
            self._score(labels, truth, groups)
        else:
            self.truths[stamp] = truth

    def _score(self, labels: np.ndarray, truth: np.ndarray, groups: list[str]) -> None:
        from mlesam_ros.pipeline.frame import nearest_resize
        from mlesam_ros.train.metrics import ConfusionMatrix

        if self.disabled:
            return
        if truth.shape != labels.shape:
            truth = nearest_resize(truth, labels.shape)
        for group in ("all", *groups):
            matrix = self.result.confusion.get(group)
            if matrix is None:
                matrix = self.result.confusion[group] = ConfusionMatrix(self.num_classes)
            try:
                matrix.update(labels, truth)
            except ValueError as error:
                self.disabled = True
                self.result.confusion.clear()
                self.result.notes.append(
                    f"mIoU skipped: ground truth does not fit the model's "
                    f"{self.num_classes} classes ({error})"
                )
                return


class PartialOutput:
    """The output bag, opened at the first write inside ``<out>.partial/`` and moved on success.

    Opening lazily means nothing exists on disk until parameters, topics and the model have
    passed (the first publication is the latched LabelInfo at the end of configure). A
    rosbags ``Writer`` names its storage file after its folder, so the bag is written to
    ``<out>.partial/<out.name>/`` and that folder is renamed to ``out``: the files inside
    keep their final names.
    """

    def __init__(self, out: Path, storage: str, logger: Any = LOG) -> None:
        self.out, self.storage, self.logger = out, storage, logger
        self.partial = out.with_name(out.name + ".partial")
        self._writer: Any = None

    @property
    def opened(self) -> bool:
        """Whether anything has been written to disk yet."""
        return self._writer is not None

    def _open(self) -> Any:
        from rosbags.rosbag2 import StoragePlugin, Writer

        if self.partial.exists():
            self.logger.warning(
                f"mlesam: removing {self.partial}, the partial output of an earlier "
                "interrupted replay to the same --out"
            )
            shutil.rmtree(self.partial)
        self.partial.mkdir(parents=True)
        plugin = StoragePlugin.MCAP if self.storage == "mcap" else StoragePlugin.SQLITE3
        writer = Writer(self.partial / self.out.name, version=9, storage_plugin=plugin)
        writer.open()
        self._writer = writer
        return writer

    def add_connection(self, *args: Any, **kwargs: Any) -> Any:
        """``Writer.add_connection``, opening the bag first if needed."""
        return (self._writer or self._open()).add_connection(*args, **kwargs)

    def write(self, *args: Any) -> None:
        """``Writer.write``."""
        self._writer.write(*args)

    def finish(self) -> None:
        """Close the bag (writes ``metadata.yaml``) and move it to ``out``."""
        writer = self._writer or self._open()
        writer.close()
        (self.partial / self.out.name).rename(self.out)
        self.partial.rmdir()

    def abandon(self, keep: bool) -> str:
        """Close after a failure; keep (``keep``) or remove what was written. Says which."""
        if self._writer is None:
            return "no output written"
        try:
            self._writer.close()
        except Exception as error:  # the close of a broken bag must not hide the first error
            self.logger.warning(f"mlesam: closing the partial output failed: {error}")
        if keep:
            return f"partial output kept in {self.partial / self.out.name}"
        shutil.rmtree(self.partial, ignore_errors=True)
        return f"partial output {self.partial} removed"


def check_input_topics(reader: Any, config: Any, bag: Path) -> None:
    """Fail before any output exists when the RGB topic (the anchor) is absent or not raw."""
    types = {c.topic: c.msgtype for c in reader.connections}
    rgb_topic = config.topics["rgb"]
    listing = ", ".join(f"{topic} ({msgtype})" for topic, msgtype in sorted(types.items()))
    if rgb_topic not in types:
        raise ValueError(
            f"topics.rgb: {rgb_topic} is not in bag {bag}; its topics are: "
            f"{listing or 'none'}. Set topics.rgb in --params to the camera's image topic"
        )
    if types[rgb_topic] != m.IMAGE:
        raise ValueError(
            f"topics.rgb: {rgb_topic} carries {types[rgb_topic]}, but the node reads "
            f"{m.IMAGE}; decompress it first (ros2 run image_transport republish compressed "
            "raw) or point topics.rgb at a raw image topic"
        )


def _open_reader(bag: Path, store: Any) -> Any:
    """Open ``bag`` with rosbags; a truncated or foreign file becomes one ``ValueError``."""
    from rosbags.highlevel import AnyReader

    reader = AnyReader([bag], default_typestore=store)
    try:
        reader.open()
    except Exception as error:  # rosbags raises its own error types, struct and OS errors
        raise ValueError(
            f"bag {bag} cannot be read ({type(error).__name__}: {error}); the recording is "
            "truncated or not a rosbag2 (repair a truncated mcap with `mcap recover` or "
            "`ros2 bag reindex`)"
        ) from None
    return reader


def replay_bag(
    bag: str | Path,
    out: str | Path,
    parameters: Mapping[str, Any] | None = None,
    *,
    storage: str | None = None,
    progress: bool = True,
    segmenter: Any = None,
    copy_inputs: bool = False,
    groups: Callable[[Any], Iterable[str]] | None = None,
    on_frame: Callable[[Any, Any], None] | None = None,
    logger: Any = LOG,
) -> ReplayResult:
    """Replay ``bag`` through the node core, write its publications to ``out``.

    ``parameters`` are flat overrides (see :func:`mlesam_ros.pipeline.load_params_file`);
    ``storage`` of the output defaults to the input's. ``groups(record)`` may name extra
    mIoU groups per frame (the demo adds the weather condition); frames are always scored
    under ``all`` and their fused-modality combination. ``on_frame(result, record)`` sees
    every published :class:`~mlesam_ros.pipeline.frame.FrameResult` (the demo renders them).
    ``copy_inputs`` also writes the inputs the node read (sensors, CameraInfo, tf, ground
    truth) into ``out``, so the output bag alone plays back in rviz or Foxglove.

    Raises ``ValueError``/``FileNotFoundError`` before creating anything when the bag, the
    parameters or the model are unusable; :class:`ReplayInterrupted` on Ctrl-C.
    """
    from tqdm import tqdm

    from mlesam_ros.pipeline.config import NodeConfig
    from mlesam_ros.pipeline.core import SegmentationCore

    bag, out = Path(bag), Path(out)
    if not bag.exists():
        raise FileNotFoundError(f"bag {bag} does not exist")
    if out.exists():
        raise ValueError(f"out: {out} already exists; remove it or choose another --out")
    storage = storage or bag_storage(bag)
    if storage not in STORAGES:
        raise ValueError(f"storage: choose from {', '.join(STORAGES)}, got {storage!r}")
    store = m.ensure_vision_msgs()
    result = ReplayResult(bag=bag, out=out)
    reader = _open_reader(bag, store)
    output = PartialOutput(out, storage, logger)
    try:
        # Fail fast: parameters and the bag's topics before the model, all before any output.
        check_input_topics(reader, NodeConfig.from_parameters(parameters or {}), bag)
        transport = BagTransport(output, parameters or {}, logger)
        start = reader.start_time if reader.connections else 0
        transport.advance(start)
        core = SegmentationCore(transport, threaded=False, segmenter=segmenter)
        core.configure()
        transport.on_issue = core.report_issue
        if on_frame is not None:
            core.listeners.append(on_frame)
        try:
            _run(reader, transport, core, result, progress, groups, tqdm, copy_inputs)
        finally:
            core.cleanup()
        output.finish()
    except KeyboardInterrupt:
        raise ReplayInterrupted(output.abandon(keep=True)) from None
    except BaseException as error:
        what = output.abandon(keep=False)
        if output.opened:
            error.add_note(what)
            logger.error(f"mlesam: replay failed: {what}")
        raise
    finally:
        reader.close()
    return result


def _delivery_rank(connection: Any) -> int:
    """Rank /tf first, then CameraInfo, then sensor data, among messages of one bag time."""
    if connection.topic in (TF_TOPIC, TF_STATIC_TOPIC):
        return 0
    return 1 if connection.msgtype == m.CAMERA_INFO else 2


def _same_time_batches(stream: Iterable[tuple[Any, int, bytes]]):
    """Group a log-time-ordered message stream by timestamp, calibration first in each group.

    Recorders often write an image and its CameraInfo (or the first /tf_static) with the same
    log time in either order; delivering the calibration first means the first frame of a bag
    is not short of it, which is what a live node sees once it has been running.
    """
    batch: list[tuple[Any, bytes]] = []
    current = None
    for connection, timestamp, raw in stream:
        if batch and timestamp != current:
            yield current, sorted(batch, key=lambda item: _delivery_rank(item[0]))
            batch = []
        current = timestamp
        batch.append((connection, raw))
    if batch:
        yield current, sorted(batch, key=lambda item: _delivery_rank(item[0]))


def _run(reader, transport, core, result, progress, groups, tqdm, copy_inputs) -> None:
    config = core.config
    rgb_topic = config.topics["rgb"]
    segmenter = core.segmenter
    result.backend = f"{getattr(segmenter, 'backend', '?')}/{getattr(segmenter, 'device', '?')}"
    result.model = str(getattr(segmenter, "artefact", "?"))
    has_truth = any(c.topic == GT_LABELS_TOPIC for c in reader.connections)
    scorer = _Scorer(result, len(core.path.class_names), groups) if has_truth else None
    bar = tqdm(
        total=sum(c.msgcount for c in reader.connections if c.topic == rgb_topic),
        unit="frame",
        desc="replay",
        disable=not progress,
    )

    def on_frame(frame_result, record) -> None:
        combo = combo_name(record.present)
        result.frames += 1
        result.presence[combo] += 1
        if record.latency_ms is not None:
            result.latencies_ms.append(record.latency_ms)
        result.processing_ms.append(record.processing_ms)
        if scorer is not None:
            extra = [] if groups is None else list(groups(record))
            scorer.prediction(record.stamp_ns, frame_result.labels.copy(), [combo, *extra])

    core.listeners.append(on_frame)
    sensor_of_topic = {topic: key for key, topic in config.topics.items() if topic}
    wanted = set(transport.subscriptions) | {TF_TOPIC, TF_STATIC_TOPIC, GT_LABELS_TOPIC}
    connections = []
    for connection in reader.connections:
        if connection.topic not in wanted:
            continue
        expected = transport.subscribed_types.get(connection.topic)
        if expected is not None and connection.msgtype != expected:
            # A live subscription of another type never connects; say so instead of silence.
            transport.report(
                connection.topic,
                f"carries {connection.msgtype}, expected {expected}; its "
                f"{connection.msgcount} messages are left out",
                sensor_of_topic.get(connection.topic, "input"),
            )
            continue
        connections.append(connection)
    try:
        for timestamp, batch in _same_time_batches(reader.messages(connections=connections)):
            transport.advance(timestamp)
            for connection, raw in batch:
                is_rgb = connection.topic == rgb_topic
                if is_rgb:
                    result.rgb_messages += 1
                    bar.update(1)
                try:
                    message = m.decode(raw, connection.msgtype)
                except Exception as error:  # a corrupt record loses that message only
                    transport.report(
                        connection.topic,
                        f"undecodable {connection.msgtype} ({type(error).__name__}); "
                        "message ignored",
                        sensor_of_topic.get(connection.topic, "input"),
                    )
                    if is_rgb:
                        core.count_drop("undecodable")
                    continue
                if copy_inputs:
                    transport.write_raw(connection.topic, connection.msgtype, raw)
                if connection.topic == GT_LABELS_TOPIC:
                    if scorer is not None:
                        scorer.truth(message)
                    continue
                transport.deliver(connection.topic, message)
        # Let the last frames time out and go through, then report once more.
        transport.advance(transport.now_ns() + config.timeout_ns + config.poll_period_ns)
        core.flush()
        core.publish_diagnostics()
    finally:
        bar.close()
    result.published = {topic: pub.count for topic, pub in transport.publishers.items()}
    result.issues = collections.Counter(core.stats.issues)
    result.dropped = core.dropped_frames()
    if transport.clock_jumps:
        result.notes.append(
            f"bag time jumped {transport.clock_jumps}x by more than "
            f"{transport.max_timer_gap_ns / 1e9:.0f} s; timers did not tick through the gaps"
        )
