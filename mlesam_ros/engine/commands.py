"""``mlesam export`` and ``mlesam build-engine``: thin argument handling."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mlesam_ros.modalities import parse_modalities
from mlesam_ros.model.presets import PRESETS

# Modalities of an untrained --preset model, in order; `--modalities N` takes the first N.
DEFAULT_MODALITIES = ("rgb", "depth", "thermal", "lidar")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the deployment subcommands."""
    _register_export(subparsers)
    _register_build_engine(subparsers)


def add_model_source(parser: argparse.ArgumentParser) -> None:
    """Add the options that choose a model: a checkpoint, or an untrained preset and size."""
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
    add_model_source(parser)
    parser.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset version")
    parser.add_argument("--output", choices=("labels", "logits"), default="labels",
                        help="labels+confidence (default) or raw logits")
    parser.add_argument("--label-dtype", choices=("int32", "uint8"), default="int32",
                        help="dtype of the labels output (uint8 for <= 256 classes)")
    parser.add_argument("--present-dtype", choices=("bool", "float32"), default="bool",
                        help="dtype of the present input (float32 for runtimes without bool)")
    parser.add_argument("--precision", choices=("fp32", "fp16"), default="fp32",
                        help="fp16: an fp16 graph (I/O types unchanged; normalisation and "
                             "softmax in fp32) for TensorRT's strongly typed fp16 engines")
    parser.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript",
                        help="torch.onnx exporter")
    parser.add_argument("--batch", type=int, default=1,
                        help="frames per call: N (static, e.g. one per camera of a rig) or 0 "
                             "(dynamic; TensorRT builds a profile for 1..max_batch); default 1")
    parser.set_defaults(handler=_run_export)


def _register_build_engine(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build-engine", help="build (or refresh) a TensorRT engine from an ONNX file",
        description="Build a TensorRT engine. Does nothing when the engine is already fresh "
                    "for this GPU, TensorRT version and ONNX (use it as a build-only step "
                    "before launching the node); --force rebuilds anyway.")
    parser.add_argument("--onnx", type=Path, required=True, help="ONNX file to build from")
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
    parser.add_argument("--workspace-mb", type=int, default=4096,
                        help="TensorRT builder workspace (MiB)")
    parser.add_argument("--timing-cache", type=Path, help="read and update this timing cache")
    parser.add_argument("--max-batch", type=int, default=1,
                        help="an ONNX exported with --batch 0: the optimisation profile's "
                             "largest batch (the node's cameras); default 1")
    parser.add_argument("--force", action="store_true", help="rebuild even if fresh")
    parser.set_defaults(handler=_run_build_engine)


def _modalities(text: str) -> tuple[str, ...]:
    """Parse a comma-separated list, or a count N: the first N of rgb,depth,thermal,lidar."""
    if text.strip().isdigit():
        count = int(text)
        if not 1 <= count <= len(DEFAULT_MODALITIES):
            raise argparse.ArgumentTypeError(
                f"a modality count must be 1..{len(DEFAULT_MODALITIES)}, got {count}")
        return DEFAULT_MODALITIES[:count]
    return parse_modalities(text)


def load_model_source(args: argparse.Namespace, **spec_options: str | int):
    """(model, spec) from --checkpoint, the demo model, or --preset."""
    from mlesam_ros.engine import resolve_default_checkpoint
    from mlesam_ros.engine.torch_model import (
        build_untrained,
        load_model,
        spec_for_model,
        with_input_size,
    )

    size = input_size(args)
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


def input_size(args: argparse.Namespace) -> tuple[int, int] | None:
    """Return the model input (H, W) of --size or --height/--width; None keeps the model's."""
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
    from mlesam_ros.output_paths import CreatedOutputs, check_output_file

    if args.batch < 0:
        raise ValueError(f"--batch: give N >= 1 frames, or 0 (dynamic); got {args.batch}")
    check_output_file(args.out, "--out")
    model, spec = load_model_source(args, output=args.output, label_dtype=args.label_dtype,
                                   present_dtype=args.present_dtype, precision=args.precision,
                                   batch=args.batch)
    with CreatedOutputs(args.out):
        report = export_onnx(model, spec, args.out, opset=args.opset, exporter=args.exporter)
    print(f"wrote {report.path} (opset {report.opset}; {report.ops.summary()})")
    rows = spec.batch or "batch"
    print(f"inputs: images {(rows, *spec.images_shape[1:])} float32 "
          f"[{','.join(spec.modalities)}], present ({rows}, {len(spec.modalities)}) "
          f"{spec.present_dtype}; output: {spec.output}; graph precision: {spec.precision}")
    for result in report.parity:
        fp32_logits = spec.output == "logits" and spec.precision == "fp32"
        compared = "logits" if fp32_logits else "confidence"
        print(f"  present={[int(p) for p in result.present]}: max|Δ {compared}|="
              f"{result.max_abs_diff:.2e}, argmax agreement {result.argmax_agreement:.4%}, "
              f"where decidable {result.confident_agreement:.4%}")
    return 0


def _run_build_engine(args: argparse.Namespace) -> int:
    from mlesam_ros.engine.engine_cache import BuildOptions, build_engine, ensure_engine
    from mlesam_ros.output_paths import check_output_file

    check_output_file(args.out, "--out")
    check_output_file(args.timing_cache, "--timing-cache")
    TensorRTBuilder = _import_tensorrt_builder()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    options = BuildOptions(args.precision, args.workspace_mb, args.timing_cache, args.typing,
                           args.max_batch)
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
            "cuda-python with `pip install -e '.[trt]'` (in the checkout) on a machine with an "
            "NVIDIA GPU"
        ) from error
    return TensorRTBuilder


