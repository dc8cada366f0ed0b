"""Official SAM checkpoint loading and MLE-SAM checkpoint save/load."""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import pytest
import torch
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)

from mlesam_ros.model import MLESAMConfig, build_mlesam, load_checkpoint, save_checkpoint
from mlesam_ros.model.presets import get_preset

SIZE = (64, 64)


def _registry_style_sam(seed: int) -> Sam:
    """A SAM built like segment_anything.build_sam._build_sam, at the tiny preset's size."""
    torch.manual_seed(seed)
    p = get_preset("tiny")
    grid = p.img_size // p.patch_size
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=p.depth,
            embed_dim=p.embed_dim,
            img_size=p.img_size,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=p.num_heads,
            patch_size=p.patch_size,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=p.global_attn_indexes,
            window_size=p.window_size,
            out_chans=p.out_chans,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=p.out_chans,
            image_embedding_size=(grid, grid),
            input_image_size=(p.img_size, p.img_size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=p.decoder_depth,
                embedding_dim=p.out_chans,
                mlp_dim=p.decoder_mlp_dim,
                num_heads=p.decoder_num_heads,
            ),
            transformer_dim=p.out_chans,
            iou_head_depth=3,
            iou_head_hidden_dim=p.out_chans,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    # Non-trivial values everywhere (SAM zero-initialises its relative position tables).
    with torch.no_grad():
        for parameter in sam.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    return sam


@pytest.fixture(scope="module")
def sam_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Sam]:
    sam = _registry_style_sam(seed=0)
    path = tmp_path_factory.mktemp("sam") / "sam_tiny.pth"
    torch.save(sam.state_dict(), path)
    return path, sam


def _config(**options: object) -> MLESAMConfig:
    values = {
        "preset": "tiny",
        "modalities": ("rgb", "depth"),
        "num_classes": 3,
        "image_size": SIZE,
        "lora_rank": 4,
        **options,
    }
    return MLESAMConfig(**values)


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    images = torch.rand(1, 2, 3, *SIZE, generator=generator) * 255
    return images, torch.tensor([[True, True]])


def test_registry_layout_checkpoint_loads_encoder_and_decoder(sam_file) -> None:
    path, sam = sam_file
    model = build_mlesam(_config(), sam_checkpoint=path)
    ours = model.backbone.encoder.state_dict()
    theirs = sam.image_encoder.state_dict()
    assert len(theirs) > 0
    for key, value in theirs.items():
        mapped = key.replace(".qkv.", ".qkv.base.")
        assert torch.equal(ours[mapped], value), key
    decoder = model.mask_decoder.state_dict()
    for key, value in sam.mask_decoder.transformer.state_dict().items():
        assert torch.equal(decoder[f"transformer.{key}"], value), key
    assert torch.equal(model.mask_decoder.iou_token.weight, sam.mask_decoder.iou_token.weight)
    assert torch.equal(
        model.mask_decoder.pe_layer.positional_encoding_gaussian_matrix,
        sam.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix,
    )
    assert torch.equal(
        model.mask_decoder.no_mask_embed.weight, sam.prompt_encoder.no_mask_embed.weight
    )
    # SAM's 4 mask tokens are not our 3 classes: left as initialised.
    assert model.mask_decoder.mask_tokens.weight.shape[0] == 3
    assert model.sam_source["file"] == "sam_tiny.pth"


def test_missing_sam_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "sam_vit_b_01ec64.pth"
    with pytest.raises(FileNotFoundError, match=r"sam_vit_b_01ec64\.pth not found"):
        build_mlesam(_config(), sam_checkpoint=missing)


def test_corrupt_and_foreign_sam_files_are_rejected(tmp_path: Path, sam_file) -> None:
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(sam_file[0].read_bytes()[:2000])
    with pytest.raises(ValueError, match="not a readable PyTorch weights file"):
        build_mlesam(_config(), sam_checkpoint=truncated)
    foreign = tmp_path / "foreign.pth"
    torch.save({"model": {"weight": torch.zeros(2)}}, foreign)
    with pytest.raises(ValueError, match=re.escape("has no 'image_encoder.*' weights")):
        build_mlesam(_config(), sam_checkpoint=foreign)


def test_wrong_preset_says_which_preset_the_file_looks_like(sam_file) -> None:
    # Built on the meta device: the mismatch is found before any weight is copied.
    with (
        torch.device("meta"),
        pytest.raises(ValueError, match=r"does not fit preset 'vit_b'.*looks like preset 'tiny'"),
    ):
        build_mlesam(_config(preset="vit_b", image_size=(64, 64)), sam_checkpoint=sam_file[0])


def test_round_trip_without_sam_weights_restores_outputs(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = build_mlesam(_config()).eval()
    path = save_checkpoint(tmp_path / "run" / "model.pt", model, epoch=3, miou=0.5)
    torch.manual_seed(2)  # a different random init must be fully overwritten
    loaded, extra = load_checkpoint(path)
    assert extra == {"epoch": 3, "miou": 0.5}
    assert loaded.config == model.config and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(*_inputs())["logits"], model(*_inputs())["logits"])


def test_round_trip_with_sam_stores_only_trained_weights(tmp_path: Path, sam_file) -> None:
    sam_path = sam_file[0]
    model = build_mlesam(_config(), sam_checkpoint=sam_path).eval()
    for name, parameter in model.named_parameters():
        if ".lora_b_" in name:
            torch.nn.init.normal_(parameter, std=0.05)
    path = save_checkpoint(tmp_path / "model.pt", model)
    stored = torch.load(path, weights_only=True)["state_dict"]
    assert "backbone.encoder.patch_embed.proj.weight" not in stored
    assert "backbone.encoder.blocks.0.attn.qkv.lora_b_q" in stored
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert (
        sum(v.numel() for k, v in stored.items() if "pixel_" not in k and "pe_layer" not in k)
        == trainable
    )

    with pytest.raises(ValueError, match=r"pass sam_checkpoint=.*sam_tiny\.pth"):
        load_checkpoint(path)
    other_sam = tmp_path / "other_sam.pth"
    torch.save(_registry_style_sam(seed=9).state_dict(), other_sam)
    with pytest.raises(ValueError, match="holds different encoder weights"):
        load_checkpoint(path, sam_checkpoint=other_sam)

    loaded, _ = load_checkpoint(path, sam_checkpoint=sam_path)
    with torch.no_grad():
        assert torch.equal(loaded(*_inputs())["logits"], model(*_inputs())["logits"])


def test_train_encoder_checkpoint_keeps_the_encoder(tmp_path: Path, sam_file) -> None:
    model = build_mlesam(_config(train_encoder=True), sam_checkpoint=sam_file[0])
    path = save_checkpoint(tmp_path / "model.pt", model)
    assert (
        "backbone.encoder.patch_embed.proj.weight"
        in torch.load(path, weights_only=True)["state_dict"]
    )


def test_bad_mlesam_checkpoints_are_rejected(tmp_path: Path, sam_file) -> None:
    with pytest.raises(FileNotFoundError, match=r"absent\.pt not found"):
        load_checkpoint(tmp_path / "absent.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="not a readable PyTorch file"):
        load_checkpoint(garbage)
    with pytest.raises(ValueError, match=r"is not an MLE-SAM checkpoint.*sam_checkpoint="):
        load_checkpoint(sam_file[0])

    path = save_checkpoint(tmp_path / "model.pt", build_mlesam(_config()))
    payload = torch.load(path, weights_only=True)
    payload["config"]["num_classes"] = 7
    torch.save(payload, path)
    with pytest.raises(ValueError, match=r"does not match its own config.*mask_tokens"):
        load_checkpoint(path)


def test_digest_spots_a_sam_file_differing_beyond_patch_embed(tmp_path: Path, sam_file) -> None:
    sam_path, sam = sam_file
    model = build_mlesam(_config(), sam_checkpoint=sam_path).eval()
    path = save_checkpoint(tmp_path / "model.pt", model)
    assert len(model.sam_source["digest"]) == 64
    # Same patch embedding (the old fingerprint), different last block.
    state = {k: v.clone() for k, v in sam.state_dict().items()}
    last = max(int(k.split(".")[2]) for k in state if k.startswith("image_encoder.blocks."))
    state[f"image_encoder.blocks.{last}.mlp.lin2.weight"] += 0.01
    other = tmp_path / "finetuned_sam.pth"
    torch.save(state, other)
    with pytest.raises(ValueError, match="holds different encoder weights"):
        load_checkpoint(path, sam_checkpoint=other)
    # A checkpoint written before the digest existed still loads (patch_embed checksum).
    payload = torch.load(path, weights_only=True)
    del payload["sam_source"]["digest"]
    old = tmp_path / "old_format.pt"
    torch.save(payload, old)
    loaded, _ = load_checkpoint(old, sam_checkpoint=other)
    assert loaded.sam_source["fingerprint"] == pytest.approx(model.sam_source["fingerprint"])
