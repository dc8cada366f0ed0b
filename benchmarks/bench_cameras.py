"""One node for four cameras vs four one-camera nodes, side by side, on one core.

Usage: python benchmarks/bench_cameras.py [--frames 20 --cameras 4 --width 640 --height 480
       --lidar-beams 64 --azimuth-steps 2048 --repeats 3 --cpu 0 --backend onnxruntime
       --model models/mlesam_demo_tiny.onnx --node-model M --data DIR --json out.json]
       [--batch-only]

Renders a synthetic surround drive (``mlesam synth --cameras``: N RGB-D cameras around one
LiDAR, exact labels per camera and per LiDAR point) once into a bag, then, per repeat,
alternating:

- **rig**: one process, one node core with ``cameras.names`` (one model, batches of the
  cameras ready together, each LiDAR sweep decoded once, one fused cloud);
- **four nodes**: N processes at once, each a one-camera node core for its camera and the
  LiDAR (N models, each sweep decoded N times, N clouds),

every process pinned to the same CPU (``--cpu``) with one inference thread, fed the bag's CDR
bytes at their log times (``threaded=False``: each frame is processed as it completes, as the
live worker does when it keeps up), every output computed and serialised. Reported per setup:
camera frames per second (wall, and per CPU second: what the setup costs a core whatever
else runs on it), resident memory (sum of RSS and of PSS, which splits shared pages), the
LiDAR cost per sweep (CDR decode of the sweep in every node that receives it, plus each
camera's LiDAR step: projection, z-buffer, encoding), mIoU per camera against the drive's
labels and whether the rig's labels equal the one-camera nodes' bit for bit, and the
labelled cloud's agreement with the LiDAR points' true labels: the rig's fused cloud vs the
per-camera clouds (what the N nodes publish; where cameras overlap they give a point two
labels). ``--batch-only`` times the model alone: N frames per call (a static batch-N graph,
a dynamic-batch graph) vs N calls of one frame, on ``--backend`` (on a GPU: tensorrt).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "models" / "mlesam_demo_tiny.onnx"
LIDAR = "/lidar/points"


# -- the drive ----------------------------------------------------------------------------------


def render(data: Path, args: argparse.Namespace) -> None:
    """The surround bag, its node parameters and the LiDAR points' true labels, once."""
    import yaml

    from mlesam_ros.data.export import camera_parameters, write_surround_bag
    from mlesam_ros.data.synth.surround import SurroundDrive, surround_rig

    key = f"{args.cameras}x{args.width}x{args.height}x{args.lidar_beams}x{args.azimuth_steps}"
    if (data / "done").is_file() and (data / "done").read_text() == f"{key} {args.frames}":
        return
    rig = surround_rig(args.cameras, args.width, args.height, lidar_beams=args.lidar_beams,
                       lidar_azimuth_steps=args.azimuth_steps)  # fmt: skip
    frames = list(SurroundDrive(seed=5, rig=rig).frames(args.frames))
    data.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(data / "bag", ignore_errors=True)
    write_surround_bag(frames, data / "bag")
    np.savez(data / "lidar_labels.npz",
             **{str(f.stamps_ns["lidar"]): f.lidar_labels for f in frames})  # fmt: skip
    (data / "cameras.yaml").write_text(yaml.safe_dump(
        {"/**": {"ros__parameters": camera_parameters(rig)}}))  # fmt: skip
    (data / "done").write_text(f"{key} {args.frames}")


# -- one node in this process -----------------------------------------------------------------


class _Publisher:
    def __init__(self, keep: bool) -> None:
        self.keep, self.sent, self.bytes = keep, [], 0

    def publish(self, data: bytes) -> None:
        self.bytes += len(data)
        if self.keep:
            self.sent.append(data)

    def has_subscribers(self) -> bool:
        return True


class _Feed:
    """NodeIO fed from the bag's CDR bytes at their log times; outputs counted."""

    def __init__(self, parameters: dict, tf) -> None:
        import logging

        self.logger = logging.getLogger("bench")
        self._parameters, self.tf, self.now = parameters, tf, 0
        self.subscriptions: dict[str, list] = {}
        self.publishers: dict[str, _Publisher] = {}
        self.timers: list = []

    def parameters(self):
        return self._parameters

    def now_ns(self) -> int:
        return self.now

    def subscribe(self, topic, msgtype, callback, reliability) -> None:
        self.subscriptions.setdefault(topic, []).append(callback)

    def create_publisher(self, topic, msgtype, latched=False, **qos):
        from mlesam_ros.pipeline import messages as m

        topic = m.resolve_topic(topic)
        self.publishers[topic] = _Publisher(keep=topic.endswith("labeled_points"))
        return self.publishers[topic]

    def create_timer(self, period_ns, callback) -> None:
        self.timers.append((period_ns, callback))

    def lookup_transform(self, target, source, stamp_ns, timeout_ns):
        return self.tf.lookup(target, source, stamp_ns)


def _memory() -> dict[str, float]:
    """This process's resident memory now and at peak, and its proportional share (MiB)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    rollup = Path("/proc/self/smaps_rollup")
    if rollup.is_file():
        for line in rollup.read_text().splitlines():
            if line.startswith("Pss:"):
                fields["Pss"] = int(line.split()[1]) / 1024
    return {"rss_mib": fields.get("VmRSS", float("nan")),
            "peak_rss_mib": fields.get("VmHWM", float("nan")),
            "pss_mib": fields.get("Pss", float("nan"))}  # fmt: skip


def run_worker(args: argparse.Namespace) -> dict:
    """One node (``--worker rig`` or ``--worker <camera>``) over the bag; JSON-able figures."""
    os.sched_setaffinity(0, {args.cpu})
    from rosbags.highlevel import AnyReader

    from mlesam_ros.msgs import image_to_numpy
    from mlesam_ros.pipeline import messages as m
    from mlesam_ros.pipeline.config import load_params_file
    from mlesam_ros.pipeline.core import SegmentationCore
    from mlesam_ros.pipeline.tf_buffer import TfBuffer
    from mlesam_ros.train.metrics import ConfusionMatrix

    data = Path(args.data)
    rig_parameters = load_params_file(data / "cameras.yaml")
    cameras = rig_parameters["cameras.names"].split(",")
    common = {"model.path": str(args.model), "model.backend": args.backend, "model.threads": 1,
              "diagnostics.period_s": 1.0}  # fmt: skip
    if args.worker == "rig":
        parameters = {**rig_parameters, **common}
        mine = cameras
    else:
        camera = args.worker
        parameters = {**common, "topics.rgb": f"/{camera}/image_raw",
                      "topics.rgb_info": f"/{camera}/camera_info",
                      "topics.depth": f"/{camera}/depth/image_raw",
                      "topics.depth_info": f"/{camera}/depth/camera_info", "topics.thermal": ""}
        mine = [camera]
    store = m.ensure_vision_msgs()
    records, truths, tf = [], {}, TfBuffer()
    with AnyReader([data / "bag"], default_typestore=store) as reader:
        for connection, log_ns, raw in reader.messages():
            if connection.topic == "/tf_static":
                tf.feed("/tf_static", reader.deserialize(raw, connection.msgtype))
            elif connection.topic.endswith("/gt_labels"):
                camera = connection.topic.split("/")[2]
                message = reader.deserialize(raw, connection.msgtype)
                truths[(camera, log_ns)] = np.array(image_to_numpy(message))
            else:
                records.append((connection.topic, connection.msgtype, bytes(raw), log_ns))
    lidar_truth = dict(np.load(data / "lidar_labels.npz"))
    transport = _Feed(parameters, tf)
    core = SegmentationCore(transport, threaded=False)
    core.configure()
    wanted = [r for r in records if r[0] in transport.subscriptions]
    num_classes = len(core.path.class_names)
    confusion = {camera: ConfusionMatrix(num_classes) for camera in mine}
    digests, lidar_ms, clouds = {}, [], {}

    def on_frame(result, record) -> None:
        camera = record.camera or mine[0]
        lanes = [] if core.rig is None else [lane for lane in core.rig.lanes
                                             if lane.name == camera]  # fmt: skip
        lane = lanes[0] if lanes else None
        path = core.path if lane is None else lane.path
        lidar_ms.append(path.stage_cpu_ms.get("points", 0.0))
        truth = truths.get((camera, record.stamp_ns))
        if truth is not None:
            confusion[camera].update(result.labels, truth)
        digests[f"{camera}/{record.stamp_ns}"] = hashlib.sha1(result.labels.tobytes()).hexdigest()
        points = lane.last_points if lane is not None else None
        if points is not None:
            stamp = str(points[0].message.header.stamp.sec * 10**9
                        + points[0].message.header.stamp.nanosec)
            view = points[1]
            clouds.setdefault(stamp, {})[camera] = (view.index.copy(), view.label.copy(),
                                                   view.confidence.copy(),
                                                   view.centrality.copy())  # fmt: skip

    core.listeners.append(on_frame)
    # Each sweep's CDR decode, as every node receiving it pays (timed apart from the node).
    decode_ms = []
    sweeps_raw = [r for r in wanted if r[0] == LIDAR]
    if sweeps_raw:
        m.decode(sweeps_raw[0][2], sweeps_raw[0][1])  # the codec's first call builds it
    for topic, msgtype, raw, _ in wanted:
        if topic == LIDAR:
            started = time.process_time()
            m.decode(raw, msgtype)
            decode_ms.append((time.process_time() - started) * 1e3)
    poll = [callback for _, callback in transport.timers]
    cpu, wall = time.process_time(), time.perf_counter()
    next_poll = 0
    for topic, _, raw, log_ns in wanted:
        transport.now = log_ns
        if log_ns >= next_poll:  # the node's timer (timeouts, diagnostics)
            for callback in poll:
                callback()
            next_poll = log_ns + core.config.poll_period_ns
        for callback in transport.subscriptions[topic]:
            callback(memoryview(raw))
    transport.now += core.config.timeout_ns + core.config.poll_period_ns
    core.flush()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    memory = _memory()
    sweeps = sum(1 for r in wanted if r[0] == LIDAR)
    fused = []
    if core.rig is not None:
        for data_bytes in transport.publishers["/mlesam/labeled_points"].sent:
            fused.append(_fused_agreement(m.decode(data_bytes, m.POINTCLOUD2), records,
                                          lidar_truth))  # fmt: skip
    per_camera = _per_camera_agreement(clouds, lidar_truth)
    core.cleanup()
    return {
        "setup": args.worker, "cameras": mine, "frames": core.stats.published,
        "dropped": core.dropped_frames(), "cpu_s": cpu, "wall_s": wall, **memory,
        "sweeps": sweeps, "lidar_decode_ms": float(np.mean(decode_ms)) if decode_ms else 0.0,
        "lidar_step_ms_total": float(np.sum(lidar_ms)),
        "batches": list(core.rig.batch_sizes) if core.rig is not None else [],
        "miou": {camera: confusion[camera].summary()["miou"] for camera in mine},
        "digests": digests, "fused": fused, "per_camera_clouds": per_camera,
    }  # fmt: skip


def _sweep_keys(records, stamp: str):
    """The sweep of ``stamp`` from the bag, as (N,) void keys of its x, y, z."""
    from mlesam_ros.msgs import cloud_xyz, pointcloud2_to_array
    from mlesam_ros.pipeline import messages as m

    for topic, msgtype, raw, _ in records:
        if topic != LIDAR:
            continue
        message = m.decode(raw, msgtype)
        if str(message.header.stamp.sec * 10**9 + message.header.stamp.nanosec) == stamp:
            xyz = np.ascontiguousarray(cloud_xyz(pointcloud2_to_array(message, skip_nans=False)))
            return xyz.view(np.dtype((np.void, 12))).ravel()
    raise KeyError(stamp)


def _fused_agreement(cloud, records, lidar_truth) -> dict:
    """Share of the fused cloud's points whose label is the point's true label."""
    from mlesam_ros.msgs import pointcloud2_to_array

    stamp = str(cloud.header.stamp.sec * 10**9 + cloud.header.stamp.nanosec)
    points = pointcloud2_to_array(cloud)
    keys = _sweep_keys(records, stamp)
    order = np.argsort(keys)
    xyz = np.ascontiguousarray(np.stack([points[k] for k in "xyz"], 1).astype(np.float32))
    found = order[np.searchsorted(keys[order], xyz.view(np.dtype((np.void, 12))).ravel())]
    truth = lidar_truth[stamp][found]
    known = truth != 255
    return {"stamp": stamp, "points": int(known.sum()),
            "correct": int((points["label"][known] == truth[known]).sum())}  # fmt: skip


def _per_camera_agreement(clouds: dict, lidar_truth: dict) -> dict:
    """The per-camera clouds against the points' truth, and the fusion rules on the overlap.

    Per-camera clouds: every camera's labelled points (a point two cameras see counts twice).
    On the points two or more cameras label, the share right for: the camera surest of its
    label (the node's rule), the camera where the point is nearest the image centre, the
    first camera of ``cameras.names`` and the mean over the cameras that see it.
    """
    total = correct = twice = conflicting = 0
    overlap = {"points": 0, "surest": 0, "nearest_centre": 0, "first_camera": 0, "mean": 0.0}
    for stamp, cameras in clouds.items():
        truth = lidar_truth[stamp]
        size = truth.size
        seen = np.zeros(size, np.int32)
        labels = np.full((len(cameras), size), -1, np.int64)
        confidence = np.full((len(cameras), size), -np.inf, np.float32)
        centrality = np.full((len(cameras), size), np.inf, np.float32)
        for row, (index, label, conf, cent) in enumerate(cameras.values()):
            known = truth[index] != 255
            total += int(known.sum())
            correct += int((label[known] == truth[index][known]).sum())
            seen[index] += 1
            labels[row, index], confidence[row, index], centrality[row, index] = label, conf, cent
        shared = np.flatnonzero((seen > 1) & (truth != 255))
        twice += int((seen > 1).sum())
        sub = labels[:, shared]
        seen_by = sub >= 0
        conflicting += int(((sub.max(0) != np.where(seen_by, sub, 10**9).min(0))).sum())
        right = (sub == truth[shared]) & seen_by
        columns = np.arange(shared.size)
        overlap["points"] += shared.size
        overlap["surest"] += int(right[confidence[:, shared].argmax(0), columns].sum())
        overlap["nearest_centre"] += int(right[centrality[:, shared].argmin(0), columns].sum())
        overlap["first_camera"] += int(right[seen_by.argmax(0), columns].sum())
        overlap["mean"] += float((right.sum(0) / seen_by.sum(0)).sum())
    return {"points": total, "correct": correct, "points_in_two": twice,
            "points_given_two_labels": conflicting, "overlap": overlap}  # fmt: skip


# -- the comparison -----------------------------------------------------------------------------


def _spawn(args: argparse.Namespace, setup: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    model = args.model if setup == "rig" else (args.node_model or args.model)
    command = [sys.executable, __file__, "--worker", setup, "--data", str(args.data),
               "--model", str(model), "--backend", args.backend, "--cpu", str(args.cpu)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)  # fmt: skip


def _collect(process: subprocess.Popen) -> dict:
    out, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"worker failed ({process.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def compare(args: argparse.Namespace) -> dict:
    from mlesam_ros.pipeline.config import load_params_file

    cameras = load_params_file(Path(args.data) / "cameras.yaml")["cameras.names"].split(",")
    runs: dict[str, list] = {"rig": [], "nodes": []}
    for repeat in range(args.repeats):
        for setup in (("rig", "nodes") if repeat % 2 == 0 else ("nodes", "rig")):
            started = time.perf_counter()
            if setup == "rig":
                results = [_collect(_spawn(args, "rig"))]
            else:
                processes = [_spawn(args, camera) for camera in cameras]  # side by side
                results = [_collect(process) for process in processes]
            wall = time.perf_counter() - started
            runs[setup].append(_summarise(results, wall))
            print(f"repeat {repeat + 1} {setup}: {runs[setup][-1]['fps_cpu']:.2f} frames per "
                  f"CPU second", file=sys.stderr, flush=True)  # fmt: skip
    return {"cameras": cameras, "runs": runs}


def _summarise(results: list[dict], elapsed_s: float) -> dict:
    frames = sum(r["frames"] for r in results)
    cpu = sum(r["cpu_s"] for r in results)
    sweeps = results[0]["sweeps"]
    decode = sum(r["lidar_decode_ms"] for r in results)  # each node decodes every sweep
    step = sum(r["lidar_step_ms_total"] for r in results) / max(sweeps, 1)
    fused = [f for r in results for f in r["fused"]]
    per_camera = results[0]["per_camera_clouds"] if len(results) == 1 else None
    digests = {k: v for r in results for k, v in r["digests"].items()}
    batches = [b for r in results for b in r["batches"]]
    return {
        "frames": frames, "cpu_s": cpu, "wall_s": max(r["wall_s"] for r in results),
        "elapsed_s": elapsed_s, "fps_cpu": frames / cpu,
        "fps_wall": frames / max(r["wall_s"] for r in results),
        "rss_mib": sum(r["rss_mib"] for r in results),
        "peak_rss_mib": sum(r["peak_rss_mib"] for r in results),
        "pss_mib": sum(r["pss_mib"] for r in results),
        "lidar_decode_ms_per_sweep": decode, "lidar_step_ms_per_sweep": step,
        "lidar_ms_per_sweep": decode + step,
        "miou": {k: v for r in results for k, v in r["miou"].items()},
        "dropped": [r["dropped"] for r in results],
        "mean_batch": float(np.mean(batches)) if batches else 1.0,
        "fused": {"points": sum(f["points"] for f in fused),
                  "correct": sum(f["correct"] for f in fused)} if fused else None,
        "per_camera_clouds": per_camera, "digests": digests,
    }  # fmt: skip


def cpu_model() -> str:
    """The processor's name (``/proc/cpuinfo``), else what Python knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def report(result: dict, args: argparse.Namespace) -> str:
    runs = result["runs"]

    def spread(setup: str, key: str, fmt: str = "{:.2f}") -> str:
        values = [run[key] for run in runs[setup]]
        return (fmt.format(np.median(values)) + " (" + fmt.format(min(values)) + "–"
                + fmt.format(max(values)) + ")")  # fmt: skip

    n = len(result["cameras"])
    lines = [
        f"{n} cameras {args.width}x{args.height}, LiDAR {args.lidar_beams}x{args.azimuth_steps}, "
        f"{args.frames} frames; {args.backend}, 1 thread, all on CPU {args.cpu}; "
        f"{cpu_model()}, {os.cpu_count()} CPUs; median "
        f"(min–max) of {args.repeats} runs",
        f"{'':28}{'one node, ' + str(n) + ' cameras':>26}{str(n) + ' one-camera nodes':>26}",
    ]
    rows = [("camera frames / CPU s", "fps_cpu", "{:.2f}"),
            ("camera frames / s (wall)", "fps_wall", "{:.2f}"),
            ("resident memory MiB (RSS)", "rss_mib", "{:.0f}"),
            ("  proportional (PSS)", "pss_mib", "{:.0f}"),
            ("LiDAR ms per sweep (CPU)", "lidar_ms_per_sweep", "{:.2f}"),
            ("  CDR decode, every node", "lidar_decode_ms_per_sweep", "{:.2f}"),
            ("  LiDAR step, every camera", "lidar_step_ms_per_sweep", "{:.2f}"),
            ("mean batch (frames/call)", "mean_batch", "{:.2f}")]  # fmt: skip
    for label, key, fmt in rows:
        lines.append(f"{label:28}{spread('rig', key, fmt):>26}{spread('nodes', key, fmt):>26}")
    rig, nodes = runs["rig"][-1], runs["nodes"][-1]
    same = sum(rig["digests"].get(k) == v for k, v in nodes["digests"].items())
    lines.append(f"labels identical to the one-camera nodes: {same} of {len(nodes['digests'])} "
                 "frames")  # fmt: skip
    lines.append("mIoU per camera (rig | one-camera node): " + ", ".join(
        f"{camera} {100 * rig['miou'][camera]:.2f} | {100 * nodes['miou'][camera]:.2f}"
        for camera in result["cameras"]))  # fmt: skip
    per, fused = rig["per_camera_clouds"], rig["fused"]
    if per and fused:
        lines.append(
            f"labelled cloud vs the LiDAR points' true labels: fused {fused['points']} points, "
            f"{100 * fused['correct'] / max(fused['points'], 1):.2f} % right; per-camera clouds "
            f"{per['points']} points, {100 * per['correct'] / max(per['points'], 1):.2f} % "
            f"right, {per['points_in_two']} points in two clouds, "
            f"{per['points_given_two_labels']} of them with two different labels")
        overlap = per["overlap"]
        rules = {"surest": "the surest camera (the node's rule)",
                 "nearest_centre": "the camera nearest its image centre",
                 "first_camera": "the first camera", "mean": "mean of the cameras"}
        if overlap["points"]:
            shown = ", ".join(f"{text} {100 * overlap[rule] / overlap['points']:.2f} %"
                              for rule, text in rules.items())  # fmt: skip
            lines.append(f"  on the {overlap['points']} points two cameras label, right: {shown}")
    return "\n".join(lines)


# -- the model alone: N frames per call vs N calls ----------------------------------------------


def batch_only(args: argparse.Namespace) -> str:
    """N frames through the model: N calls of one, one call of a static batch, a dynamic one."""
    from mlesam_ros.engine.onnx_export import export_onnx
    from mlesam_ros.engine.segmenter import Segmenter
    from mlesam_ros.engine.torch_model import load_model

    os.sched_setaffinity(0, {args.cpu})
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    n = args.cameras
    checkpoint = Path(args.model).with_suffix(".pt")
    paths = {}
    for batch in (1, n, 0):
        path = data / f"model_b{batch}.onnx"
        if not path.is_file():
            model, spec = load_model(checkpoint, batch=batch)
            export_onnx(model, spec, path)
        paths[batch] = path
    options = {"threads": 1} if args.backend == "onnxruntime" else {}
    segmenters = {f"{n} calls of 1 frame": Segmenter(paths[1], args.backend, **options),
                  f"static batch {n}": Segmenter(paths[n], args.backend, **options),
                  f"dynamic batch (max {n})": Segmenter(paths[0], args.backend, max_batch=n,
                                                        **options)}  # fmt: skip
    first = next(iter(segmenters.values()))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, len(first.modalities), 3, *first.input_size), np.uint8)
    present = np.ones((n, len(first.modalities)), bool)
    for segmenter in segmenters.values():
        for _ in range(3):
            segmenter.segment_batch(images, present)
    wall: dict[str, list] = {name: [] for name in segmenters}
    cpu: dict[str, list] = {name: [] for name in segmenters}
    for _ in range(args.repeats):
        for name, segmenter in segmenters.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            for _ in range(10):
                segmenter.segment_batch(images, present)
            wall[name].append((time.perf_counter() - started) / 10 * 1e3)
            cpu[name].append((time.process_time() - cpu_started) / 10 * 1e3)
    lines = [f"the model alone, {n} frames: {args.backend} on {first.device} ({cpu_model()}, "
             f"CPU {args.cpu}), median (min–max) ms per {n} frames over {args.repeats} runs "
             "of 10 calls", f"  {'':26} {'wall':>22} {'CPU of this process':>24}"]  # fmt: skip

    def shown(values: list) -> str:
        return f"{np.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"

    for name in segmenters:
        lines.append(f"  {name:26} {shown(wall[name]):>22} {shown(cpu[name]):>24}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--lidar-beams", type=int, default=64)
    parser.add_argument("--azimuth-steps", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=min(os.sched_getaffinity(0)))
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--node-model", type=Path,
                        help="the one-camera nodes' model (default --model): e.g. a batch-1 "
                             "engine beside a batch-4 one for the rig")
    parser.add_argument("--data", type=Path, help="keep the rendered drive here (reused)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--batch-only", action="store_true", help="time the model alone")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args)))
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        args.data = args.data or Path(scratch)
        if args.batch_only:
            print(batch_only(args))
            return 0
        render(args.data, args)
        result = compare(args)
        print(report(result, args))
        if args.json:
            for runs in result["runs"].values():
                for run in runs:
                    run.pop("digests")
            args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
