"""Time SAM's stock attention against the fused SDPA path: one ViT block, and a whole encoder.

Each case runs the same weights both ways (non-zero relative-position tables), checks that the
outputs agree, then reports the median of N timed runs of each, the two paths alternating. On
the CPU this shows what SDPA costs or saves without a GPU; on CUDA (``--device cuda``) it runs
the fused kernels.

    python benchmarks/bench_attention.py [--device cpu] [--size 256] [--batch 4] [--runs 10]
                                         [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from segment_anything.modeling.image_encoder import Block

from mlesam_ros.model.attention import FusedAttention, set_attention_impl
from mlesam_ros.model.backbone import build_image_encoder
from mlesam_ros.model.presets import get_preset


def _time_ms(step, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    tick = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - tick) * 1e3


def _randomise_rel_pos(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if "rel_pos" in name:
                parameter.normal_(std=0.3)


def _compare(name: str, module: torch.nn.Module, inputs: torch.Tensor, runs: int,
             device: torch.device) -> None:  # fmt: skip
    outputs = {}
    samples: dict[str, list[float]] = {"stock": [], "sdpa": []}
    with torch.inference_mode():
        for impl in samples:  # outputs, and a warm-up of each path
            set_attention_impl(module, impl)
            outputs[impl] = module(inputs)
        # Alternate the two paths run by run, so load from other jobs hits both alike.
        for _ in range(runs):
            for impl, times in samples.items():
                set_attention_impl(module, impl)
                times.append(_time_ms(lambda: module(inputs), device))
    times = {impl: statistics.median(values) for impl, values in samples.items()}
    error = float((outputs["sdpa"] - outputs["stock"]).abs().max()
                  / outputs["stock"].abs().max())  # fmt: skip
    print(f"{name:<46} stock {times['stock']:9.2f} ms   sdpa {times['sdpa']:9.2f} ms   "
          f"x{times['stock'] / times['sdpa']:.2f}   rel. max|Δ| {error:.1e}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=256, help="ViT-B input N x N (default 256)")
    parser.add_argument("--batch", type=int, default=4, help="images (one per modality)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (default 1: steadier on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads")

    vit_b = get_preset("vit_b")
    grid = args.size // vit_b.patch_size
    tokens = torch.randn(args.batch, grid, grid, vit_b.embed_dim, device=device)
    for window, kind in ((vit_b.window_size, "windowed 14x14"), (0, "global")):
        block = Block(vit_b.embed_dim, vit_b.num_heads, use_rel_pos=True, window_size=window,
                      input_size=(grid, grid)).to(device).eval()  # fmt: skip
        block.attn = FusedAttention(block.attn)
        _randomise_rel_pos(block)
        _compare(f"vit_b block, {kind}, {args.batch}x{grid}x{grid} tokens", block, tokens,
                 args.runs, device)  # fmt: skip

    tiny = get_preset("tiny")
    encoder = build_image_encoder(tiny).to(device).eval()
    for block in encoder.blocks:
        block.attn = FusedAttention(block.attn)
    _randomise_rel_pos(encoder)
    images = torch.randn(args.batch, 3, tiny.img_size, tiny.img_size, device=device)
    _compare(f"tiny encoder, {args.batch}x{tiny.img_size}x{tiny.img_size}", encoder, images,
             args.runs, device)  # fmt: skip


if __name__ == "__main__":
    main()
