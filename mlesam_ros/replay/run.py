"""Bag replay without ROS: drive the node core from a recorded bag and record what it publishes.

:func:`replay_bag` runs :class:`~mlesam_ros.pipeline.core.SegmentationCore` through a
:class:`~mlesam_ros.replay.transport.BagTransport` with ``threaded=False`` (each synced frame
is processed inside the callback that completed it, through the same latest-frame slot), so a
replay is deterministic and is the node's behaviour under test. With ground truth on
``/mlesam/gt_labels`` it also scores mIoU (:mod:`mlesam_ros.replay.scoring`).

Failure rules (docs: failure behaviour): parameters, the bag's topics and the model are
checked before the output bag exists; the output is written to ``<out>.partial/`` and moved
to ``out`` only when the run completes (:mod:`mlesam_ros.replay.output`).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mlesam_ros.data.topics import GT_LABELS_TOPIC, camera_truth_topic
from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.config import NodeConfig
from mlesam_ros.pipeline.core import SegmentationCore
from mlesam_ros.pipeline.tf_buffer import TF_TOPICS
from mlesam_ros.replay.output import LOG, STORAGES, PartialOutput, bag_storage
from mlesam_ros.replay.scoring import ReplayResult, Scorer, combo_name
from mlesam_ros.replay.transport import BagTransport


class ReplayInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a replay; the message says where the partial output is."""


def rgb_topics(config: Any) -> dict[str, str]:
    """Return every camera's RGB topic by parameter: ``topics.rgb``, or each of a rig's."""
    if not config.cameras:
        return {"topics.rgb": config.topics["rgb"]}
    return {f"cameras.{camera.name}.rgb": config.camera_view(camera).topics["rgb"]
            for camera in config.cameras}  # fmt: skip


def check_input_topics(reader: Any, config: Any, bag: Path) -> None:
    """Fail before any output exists when an RGB topic (an anchor) is absent or not raw."""
    types = {c.topic: c.msgtype for c in reader.connections}
    listing = ", ".join(f"{topic} ({msgtype})" for topic, msgtype in sorted(types.items()))
    for parameter, rgb_topic in rgb_topics(config).items():
        if rgb_topic not in types:
            raise ValueError(
                f"{parameter}: {rgb_topic} is not in bag {bag}; its topics are: "
                f"{listing or 'none'}. Set {parameter} in --params to the camera's image topic"
            )
        if types[rgb_topic] != m.IMAGE:
            raise ValueError(
                f"{parameter}: {rgb_topic} carries {types[rgb_topic]}, but the node reads "
                f"{m.IMAGE}; decompress it first (ros2 run image_transport republish "
                f"compressed raw) or point {parameter} at a raw image topic"
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
            _run(reader, transport, core, result, progress, groups, copy_inputs)
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
    if connection.topic in TF_TOPICS:
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


def _run(reader, transport, core, result, progress, groups, copy_inputs) -> None:
    config = core.config
    rgb = set(rgb_topics(config).values())
    segmenter = core.segmenter
    result.backend = f"{segmenter.backend}/{segmenter.device}"
    result.model = str(segmenter.artefact)
    # Ground truth: /mlesam/gt_labels for the one camera, /mlesam/<camera>/gt_labels in a rig.
    truth_topics = {camera.name: camera_truth_topic(camera.name) for camera in config.cameras}
    truth_topics = truth_topics or {"": GT_LABELS_TOPIC}
    in_bag = {c.topic for c in reader.connections}
    scorers = {camera: Scorer(result, len(core.path.class_names), groups)
               for camera, topic in truth_topics.items() if topic in in_bag}  # fmt: skip
    scorer_of_topic = {truth_topics[camera]: scorer for camera, scorer in scorers.items()}
    bar = tqdm(
        total=sum(c.msgcount for c in reader.connections if c.topic in rgb),
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
        result.note_suspects(result.frames, record.suspects)
        scorer = scorers.get(getattr(record, "camera", ""))
        if scorer is not None:
            extra = [] if groups is None else list(groups(record))
            if record.camera:
                extra.append(f"camera:{record.camera}")
            scorer.prediction(record.stamp_ns, frame_result.labels.copy(), [combo, *extra])

    core.listeners.append(on_frame)
    sensor_of_topic = {topic: key for key, topic in config.topics.items() if topic}
    wanted = set(transport.subscriptions) | {*TF_TOPICS, *scorer_of_topic}
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
                is_rgb = connection.topic in rgb
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
                        core.count_drop("undecodable", connection.topic)
                    continue
                if copy_inputs:
                    transport.write_raw(connection.topic, connection.msgtype, raw)
                if connection.topic in scorer_of_topic:
                    scorer_of_topic[connection.topic].truth(message)
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
    if core.rig is not None:
        result.dropped_by_camera = core.rig.dropped_by_camera()
    if transport.clock_jumps:
        result.notes.append(
            f"bag time jumped {transport.clock_jumps}x by more than "
            f"{transport.max_timer_gap_ns / 1e9:.0f} s; timers did not tick through the gaps"
        )
