"""Count the floating-point operations of one MLE-SAM forward pass per preset (no timing).

Compares the encoder families without a GPU and independently of machine load: the model is
built on the meta device (shapes only, no weights, no arithmetic) and torch's
``FlopCounterMode`` adds up every matmul, convolution and attention call (``scaled_dot_product
_attention`` included; 1 multiply-add = 2 FLOPs). Counts are for the whole batch: every
modality goes through the encoder.

    python benchmarks/bench_encoder_flops.py [--presets vit_b,hiera_b+] [--modalities 4]
"""

from __future__ import annotations

import argparse
from unittest import mock

import torch
from torch.utils.flop_counter import FlopCounterMode

from mlesam_ros.model import MLESAMConfig, build_mlesam, mlesam
from mlesam_ros.model.commands import modalities_argument

DEFAULT_PRESETS = "vit_b,vit_l,vit_h,hiera_t,hiera_s,hiera_b+,hiera_l,tiny,tiny_hiera"


def count_flops(preset: str, modalities: tuple[str, ...]) -> tuple[tuple[int, int], int, int]:
    """(input size, total FLOPs, encoder FLOPs) of one forward at the preset's native size."""
    with torch.device("meta"):
        model = build_mlesam(MLESAMConfig(preset=preset, modalities=modalities)).eval()
        size = model.config.image_size
        images = torch.zeros(1, len(modalities), 3, *size)
    counter = FlopCounterMode(display=False)
    # The static graph (as exported: every modality encoded): the eager path's check for
    # absent modalities reads tensor values, which meta tensors do not have.
    static = mock.patch.object(mlesam, "_eager", lambda: False)
    with torch.no_grad(), counter, static:
        model(images)
    encoder = sum(counter.get_flop_counts().get("MLESAM.backbone", {}).values())
    return size, counter.get_total_flops(), encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", default=DEFAULT_PRESETS, help="comma-separated presets")
    parser.add_argument("--modalities", default="4", help="names or a count (as model-info)")
    args = parser.parse_args()
    modalities = modalities_argument(args.modalities)
    print(f"modalities: {','.join(modalities)}; batch 1; GFLOP = 1e9 FLOPs (2 per multiply-add)")
    print(f"{'preset':<12} {'input':>10} {'total GFLOP':>12} {'encoder GFLOP':>14}")
    for preset in args.presets.split(","):
        size, total, encoder = count_flops(preset, modalities)
        shape = f"{size[0]}x{size[1]}"
        print(f"{preset:<12} {shape:>10} {total / 1e9:>12.1f} {encoder / 1e9:>14.1f}")


if __name__ == "__main__":
    main()
