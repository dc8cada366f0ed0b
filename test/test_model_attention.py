"""Fused (SDPA) encoder attention equals segment-anything's stock attention, LoRA included."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from segment_anything.modeling.image_encoder import Attention

from mlesam_ros.model import MLESAMConfig, build_mlesam
from mlesam_ros.model.attention import (
    FusedAttention,
    attention_impl,
    set_attention_impl,
)
from mlesam_ros.model.backbone import build_image_encoder
from mlesam_ros.model.presets import get_preset

MODALITIES = ("rgb", "depth", "thermal")
REL_TOL = 1e-5


def _relative_error(ours: torch.Tensor, stock: torch.Tensor) -> float:
    return float((ours - stock).abs().max() / stock.abs().max())


def _randomise(model: torch.nn.Module, seed: int = 1) -> None:
    """Non-zero rel-pos tables and LoRA B matrices (both start at zero), realistic scale."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "rel_pos" in name or ".lora_b_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)


def _compare(model: torch.nn.Module, size: tuple[int, int], batch: int = 2) -> float:
    generator = torch.Generator().manual_seed(5)
    images = torch.rand(batch, len(MODALITIES), 3, *size, generator=generator) * 255
    present = torch.tensor([[True, True, True], [True, False, True]])[:batch]
    with torch.no_grad():
        set_attention_impl(model, "sdpa")
        fused = model(images, present)["logits"]
        set_attention_impl(model, "stock")
        stock = model(images, present)["logits"]
        set_attention_impl(model, "sdpa")
    assert fused.shape == (batch, model.config.num_classes, *size)
    return _relative_error(fused, stock)


def _tiny(image_size: tuple[int, int], sam_checkpoint: Path | None = None) -> torch.nn.Module:
    torch.manual_seed(0)
    config = MLESAMConfig(preset="tiny", modalities=MODALITIES, num_classes=5,
                          image_size=image_size, lora_rank=4, lora_alpha=8.0)  # fmt: skip
    return build_mlesam(config, sam_checkpoint=sam_checkpoint).eval()


def test_every_encoder_block_uses_fused_attention_by_default() -> None:
    model = _tiny((128, 128))
    blocks = model.backbone.encoder.blocks
    assert all(isinstance(block.attn, FusedAttention) for block in blocks)
    assert attention_impl(model) == "sdpa"
    set_attention_impl(model, "stock")
    assert attention_impl(model) == "stock"
    with pytest.raises(ValueError, match="attention: 'flash' is not one of sdpa, stock"):
        set_attention_impl(model, "flash")


def test_state_dict_keys_are_unchanged_by_the_fused_attention() -> None:
    encoder = build_image_encoder(get_preset("tiny"))
    stock_keys = set(encoder.state_dict())
    model = _tiny((128, 128))
    ours = {key.removeprefix("backbone.encoder.").replace(".qkv.base.", ".qkv.")
            for key in model.state_dict() if key.startswith("backbone.encoder.")
            and ".lora_" not in key}  # fmt: skip
    assert ours == stock_keys


@pytest.mark.parametrize(
    "size",
    [(128, 128), (80, 112)],  # native; non-square with padded windows and resized rel-pos
)
def test_sdpa_matches_stock_attention_on_random_weights(size: tuple[int, int]) -> None:
    model = _tiny(size)
    _randomise(model)
    assert _compare(model, size) <= REL_TOL


def test_one_attention_module_matches_stock_with_and_without_rel_pos() -> None:
    torch.manual_seed(2)
    for use_rel_pos in (True, False):
        stock = Attention(48, num_heads=4, use_rel_pos=use_rel_pos, input_size=(6, 5))
        if use_rel_pos:
            torch.nn.init.normal_(stock.rel_pos_h, std=0.5)
            torch.nn.init.normal_(stock.rel_pos_w, std=0.5)
        fused = FusedAttention(stock)
        tokens = torch.randn(3, 6, 5, 48)
        with torch.no_grad():
            expected = stock(tokens)
            got = fused(tokens)
        assert got.shape == expected.shape == (3, 6, 5, 48)
        assert _relative_error(got, expected) <= REL_TOL
        # The bias matters: dropping it would be caught.
        if use_rel_pos:
            with torch.no_grad():
                stock.use_rel_pos = False
                assert _relative_error(stock(tokens), expected) > 1e-3


@pytest.mark.parametrize("window", [14, 0])  # ViT-B's windowed and global blocks
def test_vit_b_block_sdpa_matches_stock(window: int) -> None:
    from segment_anything.modeling.image_encoder import Block

    torch.manual_seed(3)
    vit_b = get_preset("vit_b")
    block = Block(vit_b.embed_dim, vit_b.num_heads, use_rel_pos=True, window_size=window,
                  input_size=(16, 16)).eval()  # fmt: skip
    torch.nn.init.normal_(block.attn.rel_pos_h, std=0.3)
    torch.nn.init.normal_(block.attn.rel_pos_w, std=0.3)
    tokens = torch.randn(1, 16, 16, vit_b.embed_dim)  # 16x16 grid: windows of 14 are padded
    with torch.no_grad():
        expected = block(tokens)
        block.attn = FusedAttention(block.attn)
        got = block(tokens)
    assert _relative_error(got, expected) <= REL_TOL


def test_sdpa_matches_stock_on_sam_weights_loaded_from_a_checkpoint(tmp_path: Path) -> None:
    """A SAM-layout file (``image_encoder.*``) read by the official-checkpoint loader."""
    torch.manual_seed(7)
    encoder = build_image_encoder(get_preset("tiny"))
    generator = torch.Generator().manual_seed(8)
    with torch.no_grad():
        for name, parameter in encoder.named_parameters():
            scale = 0.3 if "rel_pos" in name else 0.05
            if not name.endswith("norm1.weight") and not name.endswith("norm2.weight"):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    state = {f"image_encoder.{key}": value for key, value in encoder.state_dict().items()}
    path = tmp_path / "sam_tiny.pth"
    torch.save(state, path)

    model = _tiny((128, 128), sam_checkpoint=path)
    loaded = model.backbone.encoder.blocks[1].attn
    torch.testing.assert_close(loaded.rel_pos_h, encoder.blocks[1].attn.rel_pos_h)
    assert isinstance(loaded, FusedAttention)
    _randomise(model, seed=9)  # trained-looking experts on top of the loaded weights
    with torch.no_grad():  # keep the loaded rel-pos, only LoRA was randomised above
        for index, block in enumerate(model.backbone.encoder.blocks):
            block.attn.rel_pos_h.copy_(encoder.blocks[index].attn.rel_pos_h)
            block.attn.rel_pos_w.copy_(encoder.blocks[index].attn.rel_pos_w)
    assert _compare(model, (128, 128)) <= REL_TOL


def test_gradients_flow_to_lora_through_the_fused_attention() -> None:
    model = _tiny((64, 64)).train()
    _randomise(model)
    images = torch.rand(1, len(MODALITIES), 3, 64, 64) * 255
    model(images)["logits"].square().mean().backward()
    lora = model.backbone.encoder.blocks[0].attn.qkv
    assert lora.lora_a_q.grad is not None and lora.lora_a_q.grad.abs().sum() > 0
    assert lora.base.weight.grad is None  # the SAM weights stay frozen
