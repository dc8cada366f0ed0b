"""``mlesam export``, ``mlesam build-engine`` and ``mlesam bench``: thin argument handling."""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

from mlesam_ros.engine import BACKENDS, COMPILE_MODES
from mlesam_ros.modalities import parse_modalities
from mlesam_ros.model.presets import PRESETS

# Modalities of an untrained --preset model, in order; `--modalities N` takes the first N.
DEFAULT_MODALITIES = ("rgb", "depth", "thermal", "lidar")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the deployment subcommands."""
    _register_export(subparsers)
    _register_build_engine(subparsers)
    _register_bench(subparsers)
    _register_gpu_check(subparsers)


def _add_model_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path,
                        help="MLE-SAM checkpoint (default: the shipped demo model)")
    parser.add_argument("--sam-checkpoint", type=Path,
                        help="official SAM weights the checkpoint was trained from, if any")
    parser.add_argument("--preset", choices=tuple(PRESETS),
                        help="instead of a checkpoint: an untrained model of this size "
                             "(for timing and engine builds only; its labels are noise)")
    parser.add_argument("--height", type=int, help="input height (default: the model's)")
    parser.add_argument("--width", type=int, help="input width (default: the model's)")
    parser.add_argument("--modalities", type=_modalities,
                        help="comma-separated, e.g. rgb,depth,thermal,lidar, or a count "
                             "(4 = those four) (with --preset; must match a checkpoint's)")
    parser.add_argument("--num-classes", type=int, default=25, help="with --preset (default 25)")


def _register_export(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a model to ONNX and verify it against PyTorch",
        description="Export to a static-shape ONNX file, check it (onnx.checker, shape "
                    "inference, TensorRT operator support) and verify it with ONNX Runtime "
                    "against PyTorch with all and with absent modalities.")
    _add_model_source(parser)
    parser.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--output", choices=("labels", "logits"), default="labels",
                        help="labels+confidence (default) or raw logits")
    parser.add_argument("--label-dtype", choices=("int32", "uint8"), default="int32")
    parser.add_argument("--present-dtype", choices=("bool", "float32"), default="bool")
    parser.add_argument("--precision", choices=("fp32", "fp16"), default="fp32",
                        help="fp16: an fp16 graph (I/O types unchanged; normalisation and "
                             "softmax in fp32) for TensorRT's strongly typed fp16 engines")
    parser.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript")
    parser.set_defaults(handler=_run_export)


def _register_build_engine(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build-engine", help="build (or refresh) a TensorRT engine from an ONNX file",
        description="Build a TensorRT engine. Does nothing when the engine is already fresh "
                    "for this GPU, TensorRT version and ONNX (use it as a build-only step "
                    "before launching the node); --force rebuilds anyway.")
    parser.add_argument("--onnx", type=Path, required=True)
    parser.add_argument("--out", type=Path,
                        help="engine file (default: in the engine cache, "
                             "$MLESAM_ENGINE_CACHE or $ROS_HOME/mlesam_ros/engines or "
                             "~/.cache/mlesam_ros/engines, named after the ONNX, GPU, TensorRT "
                             "version, precision and a hash of everything the engine depends on)")
    parser.add_argument("--precision", choices=("fp16", "fp32"), default="fp16",
                        help="engine precision (default fp16, as the node uses)")
    parser.add_argument("--fp16", action="store_const", const="fp16", dest="precision",
                        help="same as --precision fp16")
    parser.add_argument("--typing", choices=("auto", "strong", "weak"), default="auto",
                        help="auto: strongly typed on TensorRT 11 (an fp16 engine is built from "
                             "an fp16 graph), the fp16 builder flag on TensorRT 10; strong or "
                             "weak (TensorRT 10 only) to choose")
    parser.add_argument("--workspace-mb", type=int, default=4096)
    parser.add_argument("--timing-cache", type=Path, help="read and update this timing cache")
    parser.add_argument("--force", action="store_true", help="rebuild even if fresh")
    parser.set_defaults(handler=_run_build_engine)


def _register_bench(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help="measure inference latency (p50/p90/p99), start-up and peak memory",
        description="Warm up, then time N frames, model only and the node's full frame path. "
                    "Default: the shipped demo model (its ONNX with onnxruntime, its checkpoint "
                    "with torch). --preset times an untrained model of a size with no trained "
                    "weights (built, and exported for onnxruntime/tensorrt, in a temporary "
                    "folder). --steps times each optimisation in turn (torch): stock eager → "
                    "SDPA attention → bf16/fp16 → torch.compile → CUDA graphs.")
    parser.add_argument("--model", type=Path, help="engine, ONNX or checkpoint to time")
    parser.add_argument("--backend", choices=BACKENDS,
                        default="auto")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: a GPU when the backend can use one. cuda on a machine "
                             "without a GPU says so and exits 0")
    _add_model_source(parser)
    parser.add_argument("--size", type=int, metavar="N", help="square input N x N "
                        "(same as --height N --width N)")
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16"),
                        help="tensorrt engine precision (default fp16) / torch autocast "
                             "(default bf16 where the GPU has it, else fp16; fp32 on CPU)")
    parser.add_argument("--compile", nargs="?", const="default", default="none",
                        choices=COMPILE_MODES, metavar="MODE",
                        help="torch backend: torch.compile, optionally with a mode: "
                             + ", ".join(COMPILE_MODES[1:]) + " (default mode: default)")
    parser.add_argument("--attention", choices=("sdpa", "stock"), default="sdpa",
                        help="torch backend: fused SDPA (default) or segment-anything's own")
    parser.add_argument("--steps", action="store_true",
                        help="torch: one row per optimisation step (stock eager, SDPA, "
                             "bf16/fp16, compile, CUDA graphs on a GPU)")
    parser.add_argument("--camera", type=_camera_size, default=(480, 640), metavar="WxH",
                        help="camera resolution of the full frame path (default 640x480; "
                             "1920x1080 for 1080p)")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--json", type=Path, help="also write the report to this file")
    # The node's frame path stage by stage (mlesam_ros.pipeline.bench.run_stage_bench).
    parser.add_argument("--stages", action="store_true",
                        help="time the node's frame path per stage on a synthetic frame")
    parser.add_argument("--frame", default="1920x1080",
                        help="--stages: camera size(s) WxH, comma-separated (default 1920x1080)")
    parser.add_argument("--points", type=int, default=131072,
                        help="--stages: LiDAR points per sweep (default 131072)")
    parser.add_argument("--outputs", choices=("all", "labels"), default="all",
                        help="--stages: every output subscribed, or only /mlesam/labels")
    parser.set_defaults(handler=_run_bench)


def _register_gpu_check(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gpu-check", help="check and time every GPU backend found here; one JSON report",
        description="On the shipped demo model: compare every backend found (torch CUDA, ONNX "
                    "Runtime CUDA, TensorRT fp32/fp16) with the CPU reference over all presence "
                    "patterns, reload a TensorRT engine from the cache and rebuild a corrupted "
                    "one, time model-only and full-frame p50/p99. Missing backends are skipped "
                    "with the reason.")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"),
                        help="JSON report (default gpu_check.json)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--camera", type=_camera_size, default=(480, 640), metavar="WxH",
                        help="camera size of the full-frame rows (default 640x480)")
    parser.add_argument("--no-full-frame", action="store_true", help="model-only timings")
    parser.add_argument("--work-dir", type=Path,
                        help="keep engines here (default: a temporary folder)")
    parser.set_defaults(handler=_run_gpu_check)


def _run_gpu_check(args: argparse.Namespace) -> int:
    from mlesam_ros.engine.gpu_check import run_gpu_check, summary

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    report = run_gpu_check(args.out, args.warmup, args.iters,
                           None if args.no_full_frame else args.camera,
                           work_dir=args.work_dir)  # fmt: skip
    print(summary(report))
    print(f"wrote {args.out}")
    failed = [row["name"] for row in report["backends"] if row["status"] == "failed"]
    if report.get("tensorrt_cache", {}).get("status") == "failed":
        failed.append("tensorrt cache")
    return 1 if failed else 0


def _camera_size(text: str) -> tuple[int, int]:
    """``WxH`` → (H, W)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT such as 1920x1080, got {text!r}") from None
    if width <= 0 or height <= 0:
        raise argparse.ArgumentTypeError(f"camera size must be positive, got {text!r}")
    return (height, width)


def _modalities(text: str) -> tuple[str, ...]:
    """Parse a comma-separated list, or a count N: the first N of rgb,depth,thermal,lidar."""
    if text.strip().isdigit():
        count = int(text)
        if not 1 <= count <= len(DEFAULT_MODALITIES):
            raise argparse.ArgumentTypeError(
                f"a modality count must be 1..{len(DEFAULT_MODALITIES)}, got {count}")
        return DEFAULT_MODALITIES[:count]
    return parse_modalities(text)


def _load_for_export(args: argparse.Namespace, **spec_options: str):
    """(model, spec) from --checkpoint, the demo model, or --preset."""
    from mlesam_ros.engine import resolve_default_checkpoint
    from mlesam_ros.engine.torch_model import (
        build_untrained,
        load_model,
        spec_for_model,
        with_input_size,
    )

    size = _size(args)
    if args.preset and not args.checkpoint:
        modalities = args.modalities or DEFAULT_MODALITIES
        model = build_untrained(args.preset, modalities, size, args.num_classes)
        return model, spec_for_model(model, **spec_options)
    checkpoint = args.checkpoint or resolve_default_checkpoint()
    model, spec = load_model(checkpoint, args.sam_checkpoint, **spec_options)
    if args.modalities and tuple(args.modalities) != spec.modalities:
        raise ValueError(
            f"modalities: {checkpoint} was trained for {','.join(spec.modalities)}; "
            "export with those (one expert per trained modality)"
        )
    if size is not None and size != spec.input_size:
        model = with_input_size(model, size)
        spec = spec_for_model(model, {"class_names": spec.class_names}, **spec_options)
    return model, spec


def _size(args: argparse.Namespace) -> tuple[int, int] | None:
    square = getattr(args, "size", None)
    if square is not None:
        if args.height is not None or args.width is not None:
            raise ValueError("size: give --size N or --height/--width, not both")
        return (square, square)
    if args.height is None and args.width is None:
        return None
    if args.height is None or args.width is None:
        raise ValueError("height/width: give both --height and --width")
    return (args.height, args.width)


def _run_export(args: argparse.Namespace) -> int:
    from mlesam_ros.engine.onnx_export import export_onnx

    model, spec = _load_for_export(args, output=args.output, label_dtype=args.label_dtype,
                                   present_dtype=args.present_dtype, precision=args.precision)
    report = export_onnx(model, spec, args.out, opset=args.opset, exporter=args.exporter)
    print(f"wrote {report.path} (opset {report.opset}; {report.ops.summary()})")
    print(f"inputs: images {spec.images_shape} float32 [{','.join(spec.modalities)}], "
          f"present (1, {len(spec.modalities)}) {spec.present_dtype}; output: {spec.output}; "
          f"graph precision: {spec.precision}")
    for result in report.parity:
        fp32_logits = spec.output == "logits" and spec.precision == "fp32"
        compared = "logits" if fp32_logits else "confidence"
        print(f"  present={[int(p) for p in result.present]}: max|Δ {compared}|="
              f"{result.max_abs_diff:.2e}, argmax agreement {result.argmax_agreement:.4%}, "
              f"where decidable {result.confident_agreement:.4%}")
    return 0


def _run_build_engine(args: argparse.Namespace) -> int:
    from mlesam_ros.engine.engine_cache import BuildOptions, build_engine, ensure_engine

    TensorRTBuilder = _import_tensorrt_builder()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    options = BuildOptions(args.precision, args.workspace_mb, args.timing_cache, args.typing)
    builder = TensorRTBuilder()
    if args.force:
        path = build_engine(args.onnx, args.out, builder, options)
        print(f"built {path}")
        return 0
    loaded = ensure_engine(builder, args.onnx, args.out, options)
    state = f"rebuilt ({'; '.join(loaded.reasons)})" if loaded.rebuilt else "up to date"
    print(f"{loaded.path}: {state}")
    return 0


def _import_tensorrt_builder():
    try:
        from mlesam_ros.engine import cuda_runtime
        from mlesam_ros.engine.tensorrt_build import TensorRTBuilder

        cuda_runtime.cudart()
    except ImportError as error:
        raise ValueError(
            f"build-engine: TensorRT is not usable here ({error}); install TensorRT and "
            "cuda-python with `pip install 'mlesam_ros[trt]'` on a machine with an NVIDIA GPU"
        ) from error
    return TensorRTBuilder


def _run_bench(args: argparse.Namespace) -> int:
    from mlesam_ros.engine.bench import (
        BenchReport,
        cuda_visible,
        machine_info,
        optimisation_ladder,
        time_configuration,
    )
    from mlesam_ros.engine.segmenter import Segmenter

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
            from mlesam_ros.pipeline.bench import run_stage_bench

            return run_stage_bench(args, model_path, backend, device)
        setup: dict[str, object] = {
            "model": described, "modalities": None, "input": None,
            "full_frame_camera": f"{args.camera[1]}x{args.camera[0]} all sensors",
            "warmup": args.warmup, "iterations": args.iters}
        if args.steps:
            configurations = _ladder(args, device, optimisation_ladder)
        else:
            configurations = [(None, args.attention, args.precision, args.compile)]
        report = BenchReport(setup=setup, machine=machine_info())
        for index, (label, attention, precision, compile_mode) in enumerate(configurations):
            # The full frame path once, with the last (most optimised) configuration.
            camera = args.camera if index == len(configurations) - 1 else None

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
                                      args.iters, camera)
            if label is None:
                setup["precision"] = args.precision or "default"
                if setup["backend"] == "torch":
                    setup.update({"compile": args.compile, "attention": args.attention})
            report.results.extend(rows)
    print(report.table())
    text = json.dumps(report.to_dict(), indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
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
    from mlesam_ros.engine import resolve_default_checkpoint

    customised = args.preset or args.checkpoint or _size(args) or args.modalities
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

    model, spec = _load_for_export(args)
    if backend == "torch":
        from mlesam_ros.model import save_checkpoint

        return save_checkpoint(folder / "bench.pt", model, class_names=list(spec.class_names))
    # Verification is the export command's job; here it would only add minutes on big presets.
    return export_onnx(model, spec, folder / "bench.onnx", verify=False).path
