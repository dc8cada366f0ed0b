"""``mlesam model-info``: build a model from a preset and print its parameter report."""

from __future__ import annotations

import argparse

from mlesam_ros.modalities import MODALITIES, parse_modalities
from mlesam_ros.model.config import FUSIONS, ROUTERS
from mlesam_ros.model.presets import PRESETS

PUBLISHED_TRAINABLE = "~20.8 M (MLE-SAM on SAM2 Hiera-B+, DELIVER RGB-D-E-L)"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``model-info`` subcommand."""
    parser = subparsers.add_parser(
        "model-info",
        help="print an MLE-SAM model's trainable/frozen parameter counts",
        description=(
            "Build MLE-SAM for a preset and modalities (weights are not allocated) and print "
            "trainable vs frozen parameters per part."
        ),
    )
    parser.add_argument("--preset", default="vit_b", choices=tuple(PRESETS),
                        help="encoder size: SAM ViT (vit_*, tiny) or SAM 2 Hiera (hiera_*)")
    parser.add_argument(
        "--modalities",
        default="rgb,depth,thermal,lidar",
        help=f"comma-separated names ({','.join(MODALITIES)}) or a count N = the first N",
    )
    parser.add_argument("--num-classes", type=int, default=25, help="classes (DELIVER: 25)")
    parser.add_argument("--lora-rank", type=int, default=32, help="rank of each LoRA expert")
    parser.add_argument("--fusion", default="router", choices=FUSIONS,
                        help="the routed path alone, the plain mean, or their average (paper)")
    parser.add_argument("--router", default="spatial", choices=ROUTERS,
                        help="router formula (docs/robustness.md)")
    parser.add_argument("--train-encoder", action="store_true", help="count the ViT as trainable")
    parser.set_defaults(handler=_run)


def modalities_argument(value: str) -> tuple[str, ...]:
    """``"rgb,depth"`` → names; ``"3"`` → the first 3 of ``MODALITIES``."""
    if value.strip().isdigit():
        count = int(value)
        if not 1 <= count <= len(MODALITIES):
            raise ValueError(f"--modalities: a count must be 1..{len(MODALITIES)}, got {count}")
        return MODALITIES[:count]
    return parse_modalities(value)


def _run(args: argparse.Namespace) -> int:
    import torch

    from mlesam_ros.model.build import build_mlesam
    from mlesam_ros.model.config import MLESAMConfig
    from mlesam_ros.model.report import format_report, parameter_report

    config = MLESAMConfig(
        preset=args.preset,
        modalities=modalities_argument(args.modalities),
        num_classes=args.num_classes,
        lora_rank=args.lora_rank,
        fusion=args.fusion,
        router=args.router,
        train_encoder=args.train_encoder,
    )
    # Meta tensors have shapes but no storage: counting ViT-H costs no memory or init time.
    with torch.device("meta"):
        model = build_mlesam(config)
    rows = parameter_report(model)
    total = rows[-1]
    print(
        f"MLE-SAM {config.preset}, modalities {','.join(config.modalities)}, "
        f"{config.num_classes} classes, LoRA rank {config.lora_rank}, fusion {config.fusion}, "
        f"router {config.router}"
    )
    print(format_report(rows))
    print(f"trainable parameters: {total.trainable:,} ({total.trainable / 1e6:.2f} M)")
    print(f"published reference:  {PUBLISHED_TRAINABLE}")
    return 0
