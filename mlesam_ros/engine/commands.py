"""``mlesam export``, ``mlesam build-engine`` and ``mlesam bench``: thin argument handling."""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

from mlesam_ros.modalities import parse_modalities
from mlesam_ros.model.presets import PRESETS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the deployment subcommands."""
    _register_export(subparsers)
    _register_build_engine(subparsers)
    _register_bench(subparsers)


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
    parser.add_argument("--modalities", type=parse_modalities,
                        help="comma-separated, e.g. rgb,depth,thermal,lidar "
                             "(with --preset; must match a checkpoint's)")
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
                        help="engine file (default: <onnx stem>.sm<CC>.trt<version>.<precision>"
                             ".engine beside the ONNX)")
    parser.add_argument("--fp16", action="store_true", help="allow fp16 kernels")
    parser.add_argument("--workspace-mb", type=int, default=4096)
    parser.add_argument("--timing-cache", type=Path, help="read and update this timing cache")
    parser.add_argument("--force", action="store_true", help="rebuild even if fresh")
    parser.set_defaults(handler=_run_build_engine)


def _register_bench(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help="measure inference latency (p50/p90/p99) and frames/s",
        description="Warm up, then time N frames. Without --model an untrained --preset model "
                    "is built (and exported for onnxruntime/tensorrt) in a temporary folder.")
    parser.add_argument("--model", type=Path, help="engine, ONNX or checkpoint to time")
    parser.add_argument("--backend", choices=("auto", "tensorrt", "onnxruntime", "torch"),
                        default="auto")
    _add_model_source(parser)
    parser.set_defaults(preset="tiny")
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16"),
                        help="tensorrt engine / torch autocast precision")
    parser.add_argument("--compile", action="store_true", help="torch backend: torch.compile")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--json", type=Path, help="also write the report to this file")
    parser.set_defaults(handler=_run_bench)


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
        modalities = args.modalities or ("rgb", "depth", "thermal", "lidar")
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
    if args.height is None and args.width is None:
        return None
    if args.height is None or args.width is None:
        raise ValueError("height/width: give both --height and --width")
    return (args.height, args.width)


def _run_export(args: argparse.Namespace) -> int:
    from mlesam_ros.engine.onnx_export import export_onnx

    model, spec = _load_for_export(args, output=args.output, label_dtype=args.label_dtype,
                                   present_dtype=args.present_dtype)
    report = export_onnx(model, spec, args.out, opset=args.opset, exporter=args.exporter)
    print(f"wrote {report.path} (opset {report.opset}; {report.ops.summary()})")
    print(f"inputs: images {spec.images_shape} float32 [{','.join(spec.modalities)}], "
          f"present (1, {len(spec.modalities)}) {spec.present_dtype}; output: {spec.output}")
    for result in report.parity:
        compared = "logits" if spec.output == "logits" else "confidence"
        print(f"  present={[int(p) for p in result.present]}: max|Δ {compared}|="
              f"{result.max_abs_diff:.2e}, argmax agreement {result.argmax_agreement:.4%}")
    return 0


def _run_build_engine(args: argparse.Namespace) -> int:
    from mlesam_ros.engine.engine_cache import BuildOptions, build_engine, ensure_engine

    TensorRTBuilder = _import_tensorrt_builder()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    options = BuildOptions("fp16" if args.fp16 else "fp32", args.workspace_mb, args.timing_cache)
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
        from mlesam_ros.engine.tensorrt_build import TensorRTBuilder
    except ImportError as error:
        raise ValueError(
            f"build-engine: TensorRT is not importable ({error}); install it with "
            "`pip install 'mlesam_ros[trt]'` on a machine with an NVIDIA GPU"
        ) from error
    return TensorRTBuilder


def _run_bench(args: argparse.Namespace) -> int:
    from mlesam_ros.engine.bench import (
        BenchReport,
        machine_info,
        measure_latency,
        model_only_step,
    )
    from mlesam_ros.engine.segmenter import Segmenter

    with tempfile.TemporaryDirectory(prefix="mlesam-bench-") as tmp:
        model_path = args.model or _bench_artefact(args, Path(tmp))
        segmenter = Segmenter(model_path, args.backend, precision=args.precision,
                              compile=args.compile, threads=args.threads,
                              sam_checkpoint=args.sam_checkpoint)
        try:
            report = BenchReport(
                setup={"model": str(args.model or f"untrained {args.preset}"),
                       "backend": segmenter.backend, "device": segmenter.device,
                       "precision": args.precision or "default", "compile": args.compile,
                       "modalities": ",".join(segmenter.modalities),
                       "input": "x".join(str(v) for v in segmenter.input_size),
                       "warmup": args.warmup, "iterations": args.iters},
                machine=machine_info(),
            )
            report.results.append(measure_latency(
                "model", model_only_step(segmenter), args.warmup, args.iters))
            # The node's whole frame path on a synthetic VGA frame (decode, register, project,
            # encode, resize, infer, upsample, overlay, painted points, messages).
            from mlesam_ros.pipeline.bench import full_frame_step

            report.setup["full_frame_camera"] = "640x480 rgb+depth+thermal+lidar"
            report.results.append(measure_latency(
                "full frame", full_frame_step(segmenter), args.warmup, args.iters))
        finally:
            segmenter.close()
    print(report.table())
    text = json.dumps(report.to_dict(), indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


def _bench_artefact(args: argparse.Namespace, folder: Path) -> Path:
    """Write an untrained preset model as a checkpoint (torch) or ONNX (other backends)."""
    from mlesam_ros.engine.onnx_export import export_onnx

    model, spec = _load_for_export(args)
    if args.backend == "torch":
        from mlesam_ros.model import save_checkpoint

        return save_checkpoint(folder / "bench.pt", model, class_names=list(spec.class_names))
    # Verification is the export command's job; here it would only add minutes on big presets.
    return export_onnx(model, spec, folder / "bench.onnx", verify=False).path
