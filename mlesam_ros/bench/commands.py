"""``mlesam bench``: latency of the model alone and of the node's whole frame path.

The measuring lives beside this file: :mod:`~mlesam_ros.bench.latency` (warm-up, percentiles,
start-up, peak memory, the torch optimisation ladder) and :mod:`~mlesam_ros.bench.frame` (one
synthetic frame through the node core, whole or stage by stage). The scripts in
``benchmarks/`` build their studies on the same two modules.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from mlesam_ros.engine import BACKENDS, COMPILE_MODES, resolve_default_checkpoint
from mlesam_ros.engine.commands import add_model_source, input_size, load_model_source

FULL_FRAME_CAMERA = (480, 640)
"""Camera (H, W) of the full-frame row when ``--camera`` is not given."""
STAGES_CAMERA = (1080, 1920)
"""Camera (H, W) of ``--stages`` when ``--camera`` is not given."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` and ``gpu-check`` subcommands."""
    parser = subparsers.add_parser(
        "bench", help="measure inference latency (p50/p90/p99), start-up and peak memory",
        description="Warm up, then time N frames, model only and the node's full frame path. "
                    "Default: the shipped demo model (its ONNX with onnxruntime, its checkpoint "
                    "with torch). --preset times an untrained model of a size with no trained "
                    "weights (built, and exported for onnxruntime/tensorrt, in a temporary "
                    "folder). --steps times each optimisation in turn (torch): stock eager → "
                    "SDPA attention → bf16/fp16 → torch.compile → CUDA graphs. --stages times "
                    "the node's frame path stage by stage instead.")
    parser.add_argument("--model", type=Path, help="engine, ONNX or checkpoint to time")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="inference backend (auto: the fastest that runs the model here)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: a GPU when the backend can use one. cuda on a machine "
                             "without a GPU says so and exits 0")
    add_model_source(parser)
    parser.add_argument("--size", type=int, metavar="N", help="square model input N x N "
                        "(same as --height N --width N)")
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16"),
                        help="tensorrt engine precision (default fp16) / torch autocast "
                             "(default bf16 where the GPU has it, else fp16; fp32 on CPU)")
    parser.add_argument("--compile", nargs="?", const="default", default="none",
                        choices=COMPILE_MODES, metavar="MODE",
                        help="torch backend: torch.compile, optionally with a mode: "
                             + ", ".join(COMPILE_MODES[1:]) + " (default mode: default)")
    parser.add_argument("--attention", choices=("sdpa", "stock"), default="sdpa",
                        help="torch backend: fused SDPA or segment-anything's own")
    parser.add_argument("--steps", action="store_true",
                        help="torch: one row per optimisation step (stock eager, SDPA, "
                             "bf16/fp16, compile, CUDA graphs on a GPU)")
    parser.add_argument("--camera", "--frame", dest="camera", type=camera_sizes,
                        metavar="WxH[,WxH]",
                        help="camera resolution(s) of the frame path (default 640x480 for the "
                             "full-frame row, 1920x1080 for --stages; --stages takes several)")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads of onnxruntime/torch (0: the CPUs this process may "
                             "use with --stages, the runtime's default otherwise)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed frames before timing")
    parser.add_argument("--iters", type=int, default=50, help="timed frames")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="also write the report as JSON to PATH ('-': standard output)")
    parser.add_argument("--stages", action="store_true",
                        help="time the node's frame path per stage on a synthetic frame")
    parser.add_argument("--points", type=int, default=131072,
                        help="--stages: LiDAR points per sweep")
    parser.add_argument("--outputs", choices=("all", "labels"), default="all",
                        help="--stages: every output subscribed, or only /mlesam/labels")
    parser.set_defaults(handler=_run_bench)
    _register_gpu_check(subparsers)


def _register_gpu_check(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``gpu-check`` subcommand."""
    parser = subparsers.add_parser(
        "gpu-check", help="check and time every GPU backend found here; one JSON report",
        description="On the shipped demo model: compare every backend found (torch CUDA, ONNX "
                    "Runtime CUDA, TensorRT fp32/fp16) with the CPU reference over all presence "
                    "patterns, reload a TensorRT engine from the cache and rebuild a corrupted "
                    "one, time model-only and full-frame p50/p99. Missing backends are skipped "
                    "with the reason.")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"),
                        help="JSON report (default gpu_check.json)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed frames before timing")
    parser.add_argument("--iters", type=int, default=50, help="timed frames")
    parser.add_argument("--camera", type=camera_sizes, default=[FULL_FRAME_CAMERA],
                        metavar="WxH", help="camera size of the full-frame rows (640x480)")
    parser.add_argument("--no-full-frame", action="store_true", help="model-only timings")
    parser.add_argument("--work-dir", type=Path,
                        help="keep engines here (default: a temporary folder)")
    parser.set_defaults(handler=_run_gpu_check)


def _run_gpu_check(args: argparse.Namespace) -> int:
    import logging

    from mlesam_ros.bench.gpu_check import run_gpu_check, summary
    from mlesam_ros.output_paths import check_output_file, check_output_folder

    check_output_file(args.out, "--out")  # before anything is measured
    if args.work_dir is not None:
        check_output_folder(args.work_dir, "--work-dir")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    report = run_gpu_check(args.out, args.warmup, args.iters,
                           None if args.no_full_frame else args.camera[0],
                           work_dir=args.work_dir)  # fmt: skip
    print(summary(report))
    print(f"wrote {args.out}")
    failed = [row["name"] for row in report["backends"] if row["status"] == "failed"]
    if report.get("tensorrt_cache", {}).get("status") == "failed":
        failed.append("tensorrt cache")
    return 1 if failed else 0


def camera_sizes(text: str) -> list[tuple[int, int]]:
    """``WxH[,WxH...]`` → [(H, W), ...]."""
    sizes = []
    for item in text.split(","):
        try:
            width, height = (int(v) for v in item.strip().lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected WIDTHxHEIGHT such as 1920x1080, got {item!r}") from None
        if width <= 0 or height <= 0:
            raise argparse.ArgumentTypeError(f"camera size must be positive, got {item!r}")
        sizes.append((height, width))
    return sizes


def _write_json(target: Path | None, report: dict[str, Any]) -> None:
    """Write ``report`` to ``target`` (``-``: standard output); nothing without ``--json``."""
    if target is None:
        return
    text = json.dumps(report, indent=2) + "\n"
    if str(target) == "-":
        sys.stdout.write(text)
    else:
        target.write_text(text)


def _run_stage_bench(args: argparse.Namespace, model_path: Path, backend: str,
                     device: str | None) -> int:
    """``--stages``: per-stage p50/p90 of the frame path at each ``--camera`` size."""
    from mlesam_ros.bench.frame import stage_table, stage_timings, thread_setup
    from mlesam_ros.engine.segmenter import Segmenter

    threads = thread_setup(args.threads)
    sizes = args.camera or [STAGES_CAMERA]
    segmenter = Segmenter(model_path, backend, device=device, precision=args.precision,
                          compile=args.compile, threads=threads["threads"],
                          sam_checkpoint=args.sam_checkpoint)  # fmt: skip
    try:
        reports = [stage_timings(segmenter, size, args.points, args.iters, args.warmup,
                                 args.outputs) for size in sizes]  # fmt: skip
        setup = {"model": str(model_path), "backend": segmenter.backend,
                 "device": segmenter.device,
                 "input": "x".join(str(v) for v in segmenter.input_size),
                 "threads (onnxruntime / torch / cv2)": threads["threads"],
                 "cpus allowed": threads["cpus_allowed"], "LiDAR points": args.points,
                 "outputs": args.outputs, "frames per size": args.iters}  # fmt: skip
    finally:
        segmenter.close()
    print("\n".join(f"{key}: {value}" for key, value in setup.items()))
    print(stage_table(reports, p90=True))
    print(stage_table(reports, metric="cpu_p50"))
    _write_json(args.json, {"setup": setup, "reports": reports})
    return 0


def _run_bench(args: argparse.Namespace) -> int:
    # The measuring modules load the node core and OpenCV: only when the command runs.
    from mlesam_ros.bench.latency import (
        BenchReport,
        cuda_visible,
        machine_info,
        optimisation_ladder,
        time_configuration,
    )
    from mlesam_ros.engine.segmenter import Segmenter
    from mlesam_ros.output_paths import check_output_file

    if args.json is not None and str(args.json) != "-":
        check_output_file(args.json, "--json")  # before anything is measured
    if args.device == "cuda" and not cuda_visible():
        print("bench: --device cuda, but no CUDA GPU is visible here (torch.cuda.is_available() "
              "is False and onnxruntime has no usable CUDA provider); nothing measured. Run it "
              "on a machine with an NVIDIA GPU, or use --device cpu.")
        return 0
    device = None if args.device == "auto" else args.device
    backend = "torch" if args.steps else _bench_backend(args.backend, device)
    if args.steps and args.backend not in ("auto", "torch"):
        raise ValueError("steps: the optimisation steps are torch configurations; drop "
                         f"--backend {args.backend} or --steps")
    with tempfile.TemporaryDirectory(prefix="mlesam-bench-") as tmp:
        model_path, described = _bench_model(args, backend, Path(tmp))
        if args.stages:
            return _run_stage_bench(args, model_path, backend, device)
        camera = (args.camera or [FULL_FRAME_CAMERA])[0]
        setup: dict[str, object] = {
            "model": described, "modalities": None, "input": None,
            "full_frame_camera": f"{camera[1]}x{camera[0]} all sensors",
            "warmup": args.warmup, "iterations": args.iters}
        if args.steps:
            configurations = _ladder(args, device, optimisation_ladder)
        else:
            configurations = [(None, args.attention, args.precision, args.compile)]
        report = BenchReport(setup=setup, machine=machine_info())
        for index, (label, attention, precision, compile_mode) in enumerate(configurations):
            # The full frame path once, with the last (most optimised) configuration.
            last = index == len(configurations) - 1

            def open_segmenter(attention=attention, precision=precision,
                               compile_mode=compile_mode) -> Segmenter:
                segmenter = Segmenter(model_path, backend, device=device, precision=precision,
                                      compile=compile_mode, threads=args.threads,
                                      sam_checkpoint=args.sam_checkpoint, attention=attention)
                setup.update({"backend": segmenter.backend, "device": segmenter.device,
                              "modalities": ",".join(segmenter.modalities),
                              "input": "x".join(str(v) for v in segmenter.input_size)})
                return segmenter

            rows = time_configuration(open_segmenter, label or "model", args.warmup,
                                      args.iters, camera if last else None)
            if label is None:
                setup["precision"] = args.precision or "default"
                if setup["backend"] == "torch":
                    setup.update({"compile": args.compile, "attention": args.attention})
            report.results.extend(rows)
    print(report.table())
    _write_json(args.json, report.to_dict())
    return 0


def _bench_backend(backend: str, device: str | None) -> str:
    """Resolve ``auto`` against --device, so the artefact built for timing suits the backend.

    On ``cuda`` without TensorRT or ONNX Runtime's CUDA provider, torch runs the checkpoint;
    on ``cpu`` ONNX Runtime (the fastest CPU backend) runs the ONNX file.
    """
    from mlesam_ros.engine.segmenter import resolve_backend

    if backend != "auto" or device is None:
        return backend
    if device == "cpu":
        return "onnxruntime"
    name, found = resolve_backend("onnx", "auto")
    return name if found == "cuda" else "torch"


def _ladder(args: argparse.Namespace, device: str | None, optimisation_ladder) -> list[tuple]:
    """(label, attention, precision, compile) per optimisation step on the chosen device."""
    import torch

    on_cuda = device == "cuda" or (device is None and torch.cuda.is_available())
    reduced = args.precision if args.precision in ("fp16", "bf16") else None
    if on_cuda and reduced is None:
        from mlesam_ros.engine.backends.torch_backend import native_bf16

        reduced = "bf16" if native_bf16() else "fp16"
    steps = optimisation_ladder("cuda" if on_cuda else "cpu", reduced, args.compile)
    return [(step.label, step.attention, step.precision, step.compile) for step in steps]


def _bench_model(args: argparse.Namespace, backend: str, folder: Path) -> tuple[Path, str]:
    """(artefact to time, how to describe it): --model, a built one, or the shipped model."""
    customised = args.preset or args.checkpoint or input_size(args) or args.modalities
    if args.model is not None:
        if customised:
            raise ValueError("model: --model is timed as it is; --checkpoint, --preset, --size "
                             "and --modalities build a model instead: give one or the other")
        return args.model, str(args.model)
    if customised:
        path = _bench_artefact(args, backend, folder)
        what = (f"untrained {args.preset}" if args.preset and not args.checkpoint
                else str(args.checkpoint or f"shipped {resolve_default_checkpoint().name}"))
        return path, what
    checkpoint = resolve_default_checkpoint()
    shipped_onnx = checkpoint.with_suffix(".onnx")
    if backend != "torch" and shipped_onnx.is_file():
        return shipped_onnx, f"shipped {shipped_onnx}"
    if backend == "torch":
        return checkpoint, f"shipped {checkpoint}"
    return _bench_artefact(args, backend, folder), f"shipped {checkpoint} (exported)"


def _bench_artefact(args: argparse.Namespace, backend: str, folder: Path) -> Path:
    """Write the chosen model as a checkpoint (torch) or ONNX (other backends)."""
    from mlesam_ros.engine.onnx_export import export_onnx

    model, spec = load_model_source(args)
    if backend == "torch":
        from mlesam_ros.model import save_checkpoint

        return save_checkpoint(folder / "bench.pt", model, class_names=list(spec.class_names))
    # Verification is the export command's job; here it would only add minutes on big presets.
    return export_onnx(model, spec, folder / "bench.onnx", verify=False).path
