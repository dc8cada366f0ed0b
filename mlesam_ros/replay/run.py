"""Bag replay without ROS: drive the node core from a recorded bag and record what it publishes.

:func:`replay_bag` runs :class:`~mlesam_ros.pipeline.core.SegmentationCore` through a
:class:`~mlesam_ros.replay.transport.BagTransport` with ``threaded=False`` (each synced frame
is processed inside the callback that completed it, through the same latest-frame slot), so a
replay is deterministic and is the node's behaviour under test. With ground truth on
``/mlesam/gt_labels`` it also scores mIoU (:mod:`mlesam_ros.replay.scoring`).

Failure rules (docs/failure-behaviour.md): ``out``, parameters, the bag's topics and the
model are checked before the output bag exists; one run at a time writes ``out`` (a lock with
the owner's pid, :class:`~mlesam_ros.output_paths.OutputLock`); the output is written to
``<out>.partial/`` and moved to ``out`` only when the run completes
(:mod:`mlesam_ros.replay.output`).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mlesam_ros.data.topics import GT_LABELS_TOPIC, camera_truth_topic
from mlesam_ros.msgs.compressed import COMPRESSED_IMAGE
from mlesam_ros.output_paths import CreatedOutputs, OutputLock, check_output_folder
from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.config import NodeConfig
from mlesam_ros.pipeline.core import SegmentationCore
from mlesam_ros.pipeline.image_transport import input_msgtype, input_topic, input_transport
from mlesam_ros.pipeline.tf_buffer import TF_TOPICS
from mlesam_ros.replay.output import LOG, STORAGES, PartialOutput, bag_storage
from mlesam_ros.replay.scoring import ReplayResult, Scorer, combo_name
from mlesam_ros.replay.transport import BagTransport
from mlesam_ros.text import quote


class ReplayInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a replay; the message says where the partial output is."""


def camera_views(config: Any) -> list[Any]:
    """Return each camera's configuration: ``config`` itself, or each camera's of a rig."""
    return [config.camera_view(camera) for camera in config.cameras] or [config]


def rgb_topics(config: Any) -> dict[str, str]:
    """Return every camera's subscribed RGB topic by parameter (``topics.rgb`` or each rig's).

    The subscribed topic is the transport's: ``<topic>/compressed`` with ``transport.rgb:
    compressed``.
    """
    if not config.cameras:
        return {"topics.rgb": input_topic(config, "rgb")}
    return {f"cameras.{camera.name}.rgb": input_topic(config.camera_view(camera), "rgb")
            for camera in config.cameras}  # fmt: skip


def check_input_topics(reader: Any, config: Any, bag: Path) -> None:
    """Fail before any output exists when an RGB topic (an anchor) is absent or of another type.

    A bag recorded through image_transport has ``<topic>/compressed``: the message says which
    ``transport.rgb`` and ``topics.rgb`` (or ``cameras.<camera>.rgb``) read it.
    """
    types = {c.topic: c.msgtype for c in reader.connections}
    wanted = input_msgtype(config, "rgb")
    listing = ", ".join(f"{quote(topic)} ({quote(msgtype)})"
                        for topic, msgtype in sorted(types.items())[:20])
    if len(types) > 20:
        listing += f", ... ({len(types)} topics)"
    compressed = sorted(
        topic
        for topic, msgtype in types.items()
        if msgtype == COMPRESSED_IMAGE and topic.endswith("/compressed")
    )
    for parameter, rgb_topic in rgb_topics(config).items():
        # The camera's own compressed stream when the bag has it, else the first one.
        found = f"{rgb_topic}/compressed" if f"{rgb_topic}/compressed" in compressed else (
            compressed[0] if compressed else None)  # fmt: skip
        hint = (
            # The settings to paste into the params file, as YAML writes them (no quotes).
            f" (for {quote(found)}: {parameter}: {found.rsplit('/', 1)[0][:120]} "
            "and transport.rgb: compressed)" if found and wanted == m.IMAGE else ""
        )
        if rgb_topic not in types:
            raise ValueError(
                f"{parameter}: {quote(rgb_topic)} is not in bag {bag}; its topics are: "
                f"{listing or 'none'}. Set {parameter} in --params to the camera's image "
                f"topic{hint}"
            )
        if types[rgb_topic] != wanted:
            raise ValueError(
                f"{parameter}: {quote(rgb_topic)} carries {quote(types[rgb_topic])}, but "
                f"transport.rgb: {input_transport(config, 'rgb')} reads {wanted}; set "
                f"transport.rgb to the transport it was recorded with (compressed: point "
                f"{parameter} at the base topic)"
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
    parameters or the model are unusable, or another run is writing ``out`` (its pid named);
    :class:`ReplayInterrupted` on Ctrl-C.
    """
    bag, out = Path(bag), Path(out)
    if not bag.exists():
        raise FileNotFoundError(f"bag {bag} does not exist")
    check_output_folder(out, "out", new=True)
    storage = storage or bag_storage(bag)
    if storage not in STORAGES:
        raise ValueError(f"storage: choose from {', '.join(STORAGES)}, got {quote(storage)}")
    store = m.ensure_vision_msgs()
    result = ReplayResult(bag=bag, out=out)
    created = CreatedOutputs(out, contents=False)  # the partial output cleans up after itself
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = OutputLock(out, "out")
    try:
        lock.acquire()
    except BaseException:
        created.discard()
        raise
    try:
        return _replay_locked(bag, out, parameters, storage, store, result, progress,
                              segmenter, copy_inputs, groups, on_frame, logger, lock, created)
    finally:
        lock.release()


def _replay_locked(bag, out, parameters, storage, store, result, progress, segmenter,
                   copy_inputs, groups, on_frame, logger, lock, created) -> ReplayResult:
    """:func:`replay_bag` once it holds the output lock."""
    if out.exists():  # another run finished it between the check and the lock
        raise ValueError(f"out: {out} already exists; remove it or choose another --out")
    try:
        reader = _open_reader(bag, store)
    except BaseException:
        created.discard()
        raise
    output = PartialOutput(out, storage, logger, previous_owner=lock.previous_owner)
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
        created.discard()
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
    has_truth = any(topic in in_bag for topic in truth_topics.values())
    remapped = not core.path.classes.identity
    scorers = {} if remapped else {
        camera: Scorer(result, len(core.path.class_names), groups)
        for camera, topic in truth_topics.items() if topic in in_bag
    }  # fmt: skip
    scorer_of_topic = {truth_topics[camera]: scorer for camera, scorer in scorers.items()}
    truth = set(truth_topics.values())
    if has_truth and remapped:
        result.notes.append("mIoU skipped: output.class_map_file remaps the published labels, "
                            "the ground truth has the model's")  # fmt: skip
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
        for stage, value in record.stages_ms.items():
            result.stages_ms.setdefault(stage, []).append(value)
        result.note_suspects(result.frames, record.suspects)
        scorer = scorers.get(getattr(record, "camera", ""))
        if scorer is not None:
            extra = [] if groups is None else list(groups(record))
            if record.camera:
                extra.append(f"camera:{record.camera}")
            scorer.prediction(record.stamp_ns, frame_result.labels.copy(), [combo, *extra])

    core.listeners.append(on_frame)
    sensor_of_topic = {input_topic(view, key): key for view in camera_views(config)
                       for key in view.enabled_inputs}  # fmt: skip
    wanted = set(transport.subscriptions) | {*TF_TOPICS, *truth_topics.values()}
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
                if connection.topic in truth:
                    scorer = scorer_of_topic.get(connection.topic)
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
    if core.rig is not None:
        result.dropped_by_camera = core.rig.dropped_by_camera()
    if transport.clock_jumps:
        result.notes.append(
            f"bag time jumped {transport.clock_jumps}x by more than "
            f"{transport.max_timer_gap_ns / 1e9:.0f} s; timers did not tick through the gaps"
        )
