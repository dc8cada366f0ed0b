"""The SAM 2 Hiera family: stock parity, batched experts, absent modalities, SAM 2 checkpoints."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import torch

from mlesam_ros.modalities import PIXEL_MEAN, PIXEL_STD
from mlesam_ros.model import (
    MLESAMConfig,
    MLESAMLoss,
    build_mlesam,
    load_checkpoint,
    save_checkpoint,
)
from mlesam_ros.model.backbone import build_image_encoder
from mlesam_ros.model.hiera import build_hiera_encoder
from mlesam_ros.model.presets import get_preset

pytest.importorskip("sam2", reason="the Hiera family needs Meta's sam2 package")

MODALITIES = ("rgb", "depth", "thermal")
SIZE = (64, 96)  # off tiny_hiera's native 128x128: the position embedding is resized


def _model(**options: object) -> torch.nn.Module:
    """A tiny_hiera MLE-SAM whose every weight is non-trivial (SAM 2 zero-inits some)."""
    torch.manual_seed(0)
    values = {
        "preset": "tiny_hiera",
        "modalities": MODALITIES,
        "num_classes": 4,
        "image_size": SIZE,
        "lora_rank": 4,
        "lora_alpha": 8.0,
        **options,
    }
    model = build_mlesam(MLESAMConfig(**values))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if ".lora_b_" not in name:
                parameter.add_(0.02 * torch.randn_like(parameter))
    return model.eval()


def _images(batch: int, size: tuple[int, int] = SIZE) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    return torch.rand(batch, len(MODALITIES), 3, *size, generator=generator) * 255


def _normalised(images: torch.Tensor, index: int) -> torch.Tensor:
    name = MODALITIES[index]
    mean = torch.tensor(PIXEL_MEAN[name]).reshape(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD[name]).reshape(1, 3, 1, 1)
    return (images[:, index] - mean) / std


def _stock_encoder(model: torch.nn.Module, expert: int | None) -> torch.nn.Module:
    """sam2's ImageEncoder (Hiera + FpnNeck) with our weights, LoRA merged if ``expert``."""
    stock = build_hiera_encoder(get_preset("tiny_hiera"))
    state = {}
    for key, value in model.backbone.trunk.state_dict().items():
        if ".lora_" not in key:
            state["trunk." + key.replace(".qkv.base.", ".qkv.")] = value.clone()
    for key, value in model.pyramid.neck.state_dict().items():
        state["neck." + key] = value.clone()
    if expert is not None:
        for index, block in enumerate(model.backbone.trunk.blocks):
            lora = block.attn.qkv
            out = lora.dim_out
            weight = state[f"trunk.blocks.{index}.attn.qkv.weight"]
            # y = x W^T; the expert adds x A B to Q and V, i.e. (A B)^T to their weight rows.
            weight[:out] += lora.scale * (lora.lora_a_q[expert] @ lora.lora_b_q[expert]).T
            weight[2 * out :] += lora.scale * (lora.lora_a_v[expert] @ lora.lora_b_v[expert]).T
    stock.load_state_dict(state, strict=True)
    return stock.eval()


def _flat(images: torch.Tensor) -> torch.Tensor:
    """Modality-major normalised batch, as MLESAM.encode feeds the backbone."""
    return torch.cat([_normalised(images, m) for m in range(len(MODALITIES))])


def test_zero_lora_equals_sam2_stock_trunk_and_neck_exactly() -> None:
    model = _model()
    images = _images(2)
    stock = _stock_encoder(model, None)
    flat = _flat(images)
    with torch.no_grad():
        ours = model.pyramid(model.backbone(flat))
        reference, _ = stock.neck(stock.trunk(flat))
        sam2_output = stock(flat)
    assert [level.shape[-1] for level in ours] == [24, 12, 6, 3]  # strides 4, 8, 16, 32
    for level, expected in zip(ours, reference, strict=True):
        assert torch.equal(level, expected)
    # What SAM 2 hands its mask decoder (scalp=1 drops stride 32) is our decoder input too.
    for level, expected in zip(ours[:3], sam2_output["backbone_fpn"], strict=True):
        assert torch.equal(level, expected)
    no_mem = model.pyramid.no_mem_embed.reshape(1, -1, 1, 1)
    torch.testing.assert_close(
        model.pyramid.image_embedding(ours), sam2_output["vision_features"] + no_mem
    )


def test_batched_experts_equal_per_expert_merged_weights() -> None:
    model = _model()
    for name, parameter in model.named_parameters():
        if ".lora_b_" in name:
            torch.nn.init.normal_(parameter, std=0.05)
    images = _images(2)
    with torch.no_grad():
        taps = model.encode(images)  # (B, M, C_s, h_s, w_s) per stage
        for index in range(len(MODALITIES)):
            merged = _stock_encoder(model, index).trunk(_normalised(images, index))
            for ours, separate in zip(taps, merged, strict=True):
                torch.testing.assert_close(ours[:, index], separate, rtol=0, atol=1e-5)
        # The experts matter: modality 0's expert on modality 1's pixels gives other features.
        crossed = _stock_encoder(model, 0).trunk(_normalised(images, 1))
        assert (crossed[-1] - taps[-1][:, 1]).abs().max() > 1e-3
    # Q and V experts at a stage transition have the block's (wider) output width.
    transition = model.backbone.trunk.blocks[1].attn.qkv
    assert transition.lora_a_q.shape == (3, 32, 4) and transition.lora_b_q.shape == (3, 4, 64)


@pytest.mark.parametrize("fusion", ["router", "both"])
def test_absent_modality_has_exactly_zero_influence(fusion: str) -> None:
    model = _model(fusion=fusion, router_top_k=2 if fusion == "router" else 0)
    images = _images(2)
    present = torch.tensor([[True, False, True], [False, True, False]])
    with torch.no_grad():
        reference = model(images, present)
        changed = images.clone()
        changed[0, 1] = torch.rand(3, *SIZE) * 255
        changed[1, 0] = float("nan")  # a dead sensor delivering garbage
        changed[1, 2] = float("inf")
        other = model(changed, present)
        changed_present = images.clone()
        changed_present[0, 0] = torch.rand(3, *SIZE) * 255
        moved = model(changed_present, present)["logits"]
    for key in ("logits", "mask_logits", "aux_logits", "routing_weights"):
        assert torch.isfinite(other[key]).all()
        assert torch.equal(other[key], reference[key]), key
    assert other["logits"].shape == (2, 4, *SIZE)
    assert other["routing_weights"].shape == (2, 4, 3)
    assert (moved[0] - reference["logits"][0]).abs().max() > 1e-3
    assert torch.equal(moved[1], reference["logits"][1])


def test_nothing_present_gives_finite_output_independent_of_pixels() -> None:
    model = _model()
    nobody = torch.zeros(2, len(MODALITIES), dtype=torch.bool)
    with torch.no_grad():
        first = model(_images(2), nobody)
        second = model(torch.full((2, len(MODALITIES), 3, *SIZE), float("nan")), nobody)
    assert torch.isfinite(first["logits"]).all()
    assert torch.equal(first["logits"], second["logits"])
    assert torch.equal(first["routing_weights"], torch.zeros(2, 4, len(MODALITIES)))


def test_only_adapters_and_heads_train_and_get_gradients() -> None:
    model = _model().train()
    present = torch.tensor([[True, False, True], [True, True, True]])
    target = torch.randint(0, 4, (2, *SIZE))
    MLESAMLoss()(model(_images(2), present), target)["loss"].backward()
    for name, parameter in model.named_parameters():
        frozen = name.startswith("backbone.") and ".lora_" not in name
        assert parameter.requires_grad != frozen, name
        assert (parameter.grad is None) == frozen, name
    lora_b = [p.grad.abs().sum() for n, p in model.named_parameters() if ".lora_b_" in n]
    assert len(lora_b) == 5 * 2 and all(g > 0 for g in lora_b)


def test_gradient_checkpointing_recomputes_blocks_with_the_same_gradients() -> None:
    model = _model().train()
    for name, parameter in model.named_parameters():
        if ".lora_b_" in name:  # trained-looking experts: their Q/V path carries gradients
            torch.nn.init.normal_(parameter, std=0.05)
    present = torch.tensor([[True, False, True], [True, True, False]])  # expert_ids path
    images = _images(2)
    calls = []
    model.backbone.trunk.blocks[1].register_forward_pre_hook(lambda *_: calls.append(1))

    def gradients() -> dict[str, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)  # the same aux-head dropout mask in both runs
        model(images, present)["logits"].square().mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    reference = gradients()
    plain_calls, calls[:] = len(calls), []
    model.backbone.gradient_checkpointing = True
    checkpointed = gradients()
    assert (plain_calls, len(calls)) == (1, 2)  # the block ran again in backward
    assert reference.keys() == checkpointed.keys()
    assert sum(".lora_" in name for name in reference) == 5 * 4  # blocks x (A, B) x (Q, V)
    for name, grad in checkpointed.items():
        torch.testing.assert_close(grad, reference[name], rtol=1e-4, atol=1e-6)


def _sam2_mask_decoder(num_classes: int, dim: int, mlp_dim: int, heads: int) -> torch.nn.Module:
    """sam2's own MaskDecoder as SAM 2.1 configures it, with one mask token per class."""
    from sam2.modeling.sam.mask_decoder import MaskDecoder
    from sam2.modeling.sam.transformer import TwoWayTransformer

    return MaskDecoder(
        transformer_dim=dim,
        transformer=TwoWayTransformer(
            depth=2, embedding_dim=dim, mlp_dim=mlp_dim, num_heads=heads
        ),
        num_multimask_outputs=num_classes - 1,
        use_high_res_features=True,
        iou_prediction_use_sigmoid=True,
        pred_obj_scores=True,
        pred_obj_scores_mlp=True,
    )


def test_hiera_decoder_computes_sam2_mask_decoder_with_high_res_features() -> None:
    from mlesam_ros.model.decoder import SAM2SemanticMaskDecoder
    from mlesam_ros.model.sam_weights import load_decoder_weights

    torch.manual_seed(0)
    reference = _sam2_mask_decoder(num_classes=5, dim=64, mlp_dim=256, heads=4).eval()
    with torch.no_grad():  # non-trivial values everywhere (LayerNorms start at 1 and 0)
        for parameter in reference.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    state = {f"sam_mask_decoder.{k}": v for k, v in reference.state_dict().items()}
    state["sam_prompt_encoder.no_mask_embed.weight"] = torch.randn(1, 64)
    state["sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"] = torch.randn(2, 32)
    state["image_encoder.trunk.patch_embed.proj.weight"] = torch.zeros(1)  # a SAM 2 file
    ours = SAM2SemanticMaskDecoder(
        num_classes=5, transformer_dim=64, depth=2, mlp_dim=256, num_heads=4, pyramid_dim=64,
        num_prompt_tokens=2,
    ).eval()
    left = load_decoder_weights(ours, state)
    # Everything but SAM's ambiguity-mask tokens/MLPs (not classes) and our prompts is SAM 2's.
    assert {key.split(".")[0] for key in left} == {
        "mask_tokens", "output_hypernetworks_mlps", "prompt_tokens"}  # fmt: skip
    for name in ("conv_s0.weight", "conv_s1.bias", "obj_score_token.weight"):
        assert torch.equal(ours.state_dict()[name], reference.state_dict()[name]), name
    with torch.no_grad():
        ours.mask_tokens.load_state_dict(reference.mask_tokens.state_dict())
        ours.output_hypernetworks_mlps.load_state_dict(
            reference.output_hypernetworks_mlps.state_dict()
        )
        generator = torch.Generator().manual_seed(4)
        embedding = torch.randn(2, 64, 4, 6, generator=generator)
        features_4 = torch.randn(2, 64, 16, 24, generator=generator)
        features_8 = torch.randn(2, 64, 8, 12, generator=generator)
        mine = ours(embedding, features_4, features_8)
        # SAM2Base.forward_image projects the levels, predict_masks adds them while upscaling.
        masks, _, _, _ = reference.predict_masks(
            image_embeddings=embedding,
            image_pe=ours.pe_layer((4, 6)).unsqueeze(0),
            sparse_prompt_embeddings=ours.prompt_tokens.expand(2, -1, -1),
            dense_prompt_embeddings=ours.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
                2, -1, 4, 6
            ),
            repeat_image=False,
            high_res_features=[reference.conv_s0(features_4), reference.conv_s1(features_8)],
        )
        moved = ours(embedding, features_4 + 1.0, features_8)
    assert mine.shape == (2, 5, 16, 24)  # one mask per class at stride 4
    torch.testing.assert_close(mine, masks, rtol=0, atol=1e-5)
    assert (moved - mine).abs().max() > 1e-3  # the stride-4 level reaches the masks


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"image_size: .* multiples of 32 .*Hiera stride"):
        MLESAMConfig(preset="hiera_b+", image_size=(512, 528))
    with pytest.raises(ValueError, match=r"taps: hiera_t routes over Hiera's stage ends"):
        MLESAMConfig(preset="hiera_t", taps=(0, 2, 8, 11))
    with pytest.raises(ValueError, match=r"pyramid_dim: .*FPN neck with 256 channels"):
        MLESAMConfig(preset="hiera_l", pyramid_dim=128)


# --- official SAM 2 checkpoints -----------------------------------------------------------


@pytest.fixture(scope="module")
def sam2_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """A SAM 2.1 Hiera-T built by sam2's own builder, saved in the official layout."""
    from sam2.build_sam import build_sam2

    torch.manual_seed(0)
    sam2_model = build_sam2(
        "configs/sam2.1/sam2.1_hiera_t.yaml", device="cpu", apply_postprocessing=False
    )
    with torch.no_grad():  # non-trivial values where SAM 2 zero-initialises (position tables)
        for parameter in sam2_model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    path = tmp_path_factory.mktemp("sam2") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": sam2_model.state_dict()}, path)
    return path, sam2_model.eval()


def _hiera_t(**options: object) -> MLESAMConfig:
    values = {"preset": "hiera_t", "modalities": ("rgb", "depth"), "num_classes": 3,
              "image_size": (64, 64), "lora_rank": 4, **options}
    return MLESAMConfig(**values)


@pytest.fixture(scope="module")
def hiera_t_model(sam2_file) -> torch.nn.Module:
    return build_mlesam(_hiera_t(), sam_checkpoint=sam2_file[0]).eval()


def test_sam2_checkpoint_loads_key_by_key(sam2_file, hiera_t_model) -> None:
    _, sam2_model = sam2_file
    model = hiera_t_model
    # One image per expert (the backbone takes a modality-major batch).
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        # Encoder: same features as SAM 2's own image encoder (zero LoRA).
        ours = model.pyramid(model.backbone(images))
        theirs = sam2_model.image_encoder(images)
        for level, expected in zip(ours[:3], theirs["backbone_fpn"], strict=True):
            torch.testing.assert_close(level, expected, rtol=0, atol=1e-5)
        embedding = model.pyramid.image_embedding(ours)
        expected = theirs["vision_features"] + sam2_model.no_mem_embed.reshape(1, -1, 1, 1)
        torch.testing.assert_close(embedding, expected, rtol=0, atol=1e-5)
        # Decoder: the two-way transformer (MLP names mapped) computes what SAM 2's does.
        pe = model.mask_decoder.pe_layer(tuple(embedding.shape[-2:])).unsqueeze(0)
        tokens = torch.randn(2, 5, 256)
        mine = model.mask_decoder.transformer(embedding, pe, tokens)
        sam2_out = sam2_model.sam_mask_decoder.transformer(embedding, pe, tokens)
        for a, b in zip(mine, sam2_out, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    decoder = sam2_model.sam_mask_decoder
    assert torch.equal(model.mask_decoder.iou_token.weight, decoder.iou_token.weight)
    assert torch.equal(
        model.mask_decoder.output_upscaling[0].weight, decoder.output_upscaling[0].weight
    )
    prompt = sam2_model.sam_prompt_encoder
    assert torch.equal(model.mask_decoder.no_mask_embed.weight, prompt.no_mask_embed.weight)
    assert torch.equal(
        model.mask_decoder.pe_layer.positional_encoding_gaussian_matrix,
        prompt.pe_layer.positional_encoding_gaussian_matrix,
    )


def test_sam2_high_res_layers_load_and_decode_as_sam2_does(sam2_file) -> None:
    path, sam2_model = sam2_file
    model = build_mlesam(_hiera_t(num_classes=4), sam_checkpoint=path).eval()
    decoder, theirs = model.mask_decoder, sam2_model.sam_mask_decoder
    for name in ("conv_s0.weight", "conv_s0.bias", "conv_s1.weight", "conv_s1.bias",
                 "obj_score_token.weight"):  # fmt: skip
        assert torch.equal(decoder.state_dict()[name], theirs.state_dict()[name]), name
    with torch.no_grad():  # SAM's 4 ambiguity tokens are not classes: copied only to compare
        decoder.mask_tokens.load_state_dict(theirs.mask_tokens.state_dict())
        decoder.output_hypernetworks_mlps.load_state_dict(
            theirs.output_hypernetworks_mlps.state_dict()
        )
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        levels = model.pyramid(model.backbone(images))  # zero LoRA: SAM 2's own features
        ours = decoder(model.pyramid.image_embedding(levels), levels[0], levels[1])
        backbone_out = sam2_model.forward_image(images)  # applies conv_s0 / conv_s1
        fpn = backbone_out["backbone_fpn"]
        embedding = backbone_out["vision_features"] + sam2_model.no_mem_embed.reshape(1, -1, 1, 1)
        prompt = sam2_model.sam_prompt_encoder
        size = tuple(embedding.shape[-2:])
        masks, _, _, _ = theirs.predict_masks(
            image_embeddings=embedding,
            image_pe=prompt.pe_layer(size).unsqueeze(0),
            sparse_prompt_embeddings=decoder.prompt_tokens.expand(2, -1, -1),
            dense_prompt_embeddings=prompt.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
                2, -1, *size
            ),
            repeat_image=False,
            high_res_features=fpn[:2],
        )
    assert ours.shape == (2, 4, 16, 16)
    torch.testing.assert_close(ours, masks, rtol=0, atol=1e-4)


def test_sam2_file_without_high_res_layers_is_refused(tmp_path: Path, sam2_file) -> None:
    path, _ = sam2_file
    state = torch.load(path, weights_only=True)["model"]
    stripped = tmp_path / "no_high_res.pt"
    torch.save({"model": {k: v for k, v in state.items() if ".conv_s1." not in k}}, stripped)
    with pytest.raises(ValueError, match=r"lacks a fitting 'sam_mask_decoder\.conv_s1\..*sam2"):
        build_mlesam(_hiera_t(), sam_checkpoint=stripped)


def test_mlesam_checkpoint_round_trip_on_sam2_weights(
    tmp_path: Path, sam2_file, hiera_t_model
) -> None:
    path, _ = sam2_file
    model = copy.deepcopy(hiera_t_model)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.05 * torch.randn_like(parameter))  # "trained"
    images = torch.rand(1, 2, 3, 64, 64, generator=torch.Generator().manual_seed(2)) * 255
    present = torch.tensor([[True, False]])
    with torch.no_grad():
        expected = model(images, present)["logits"]
    saved = save_checkpoint(tmp_path / "hiera_t.pt", model)
    stored = torch.load(saved, weights_only=True)["state_dict"]
    assert not any(k.startswith("backbone.") and ".lora_" not in k for k in stored)
    assert "pyramid.no_mem_embed" in stored and "pyramid.neck.convs.0.conv.weight" in stored

    reloaded, _ = load_checkpoint(saved, sam_checkpoint=path)
    with torch.no_grad():
        assert torch.equal(reloaded(images, present)["logits"], expected)
    with pytest.raises(ValueError, match="pass sam_checkpoint="):
        load_checkpoint(saved)


def test_sam1_and_sam2_files_are_told_apart(tmp_path: Path, sam2_file) -> None:
    path, _ = sam2_file
    with pytest.raises(ValueError, match=r"is a SAM 2 checkpoint .* needs a SAM checkpoint"):
        build_mlesam(MLESAMConfig(preset="tiny"), sam_checkpoint=path)
    sam1 = tmp_path / "sam_tiny.pth"
    encoder = build_image_encoder(get_preset("tiny"))
    torch.save({f"image_encoder.{k}": v for k, v in encoder.state_dict().items()}, sam1)
    with pytest.raises(ValueError, match=r"is a SAM checkpoint .*ViT.* needs a SAM 2 checkpoint"):
        build_mlesam(_hiera_t(), sam_checkpoint=sam1)
    with pytest.raises(ValueError, match=r"not fit preset 'hiera_b\+'.*looks like.*'hiera_t'"):
        build_mlesam(MLESAMConfig(preset="hiera_b+"), sam_checkpoint=path)
    with pytest.raises(FileNotFoundError, match=r"SAM 2 checkpoint .*facebookresearch/sam2#down"):
        build_mlesam(_hiera_t(), sam_checkpoint=tmp_path / "sam2.1_hiera_tiny.pt")


# --- deployment ---------------------------------------------------------------------------


def test_onnx_export_matches_pytorch_for_every_presence_pattern(tmp_path: Path) -> None:
    from mlesam_ros.engine.onnx_export import export_onnx, presence_patterns
    from mlesam_ros.engine.torch_model import spec_for_model

    model = _model(modalities=MODALITIES[:2])  # 3 presence patterns keep the test short
    for name, parameter in model.named_parameters():
        if ".lora_b_" in name:  # trained-looking experts, so their path is checked too
            torch.nn.init.normal_(parameter, std=0.05)
    spec = spec_for_model(model, output="logits")
    report = export_onnx(model, spec, tmp_path / "tiny_hiera.onnx")
    assert [r.present for r in report.parity] == presence_patterns(2)
    for result in report.parity:
        assert result.max_abs_diff < 1e-3 and result.argmax_agreement >= 0.999, result
    assert report.ops.ok, report.ops.summary()  # no bicubic Resize: the embedding is baked
    assert report.path.is_file()
    # Baking happened on the exported copy only: the model still resizes for other sizes.
    assert model.backbone.baked_pos_embed is None


# --- model-info and the DELIVER config ----------------------------------------------------


def test_model_info_hiera_b_plus_four_modalities(capsys: pytest.CaptureFixture[str]) -> None:
    from sam2.modeling.backbones.hieradet import Hiera

    from mlesam_ros import cli

    assert cli.main(["model-info", "--preset", "hiera_b+", "--modalities", "4"]) == 0
    out = capsys.readouterr().out
    # Hiera-B+: stages of 2, 3, 16, 3 blocks at widths 112, 224, 448, 896; the first block of
    # a stage maps the previous width to the new one. Each block: 4 experts x Q and V x
    # (A: d_in x 32, B: 32 x d_out).
    widths = [112] * 2 + [224] * 3 + [448] * 16 + [896] * 3
    inputs = [112, *widths[:-1]]
    pairs = zip(inputs, widths, strict=True)
    expected_lora = 4 * 2 * 32 * sum(d_in + d_out for d_in, d_out in pairs)
    lora = re.search(r"lora experts\s+([\d,]+)", out)
    assert int(lora.group(1).replace(",", "")) == expected_lora == 5_304_320
    # The frozen part is exactly sam2's Hiera as sam2.1_hiera_b+.yaml configures it.
    stock_trunk = sum(p.numel() for p in Hiera(embed_dim=112, num_heads=2).parameters())
    encoder = re.search(r"encoder \(SAM, SAM 2\)\s+0\s+([\d,]+)", out)
    assert int(encoder.group(1).replace(",", "")) == stock_trunk
    assert "published reference:  ~20.8 M" in out


def test_deliver_hiera_config_is_the_papers_setup() -> None:
    from mlesam_ros.train.config import load_train_config

    root = Path(__file__).resolve().parents[1]
    config = load_train_config(root / "config" / "train" / "deliver_hiera_b_plus.yaml")
    model = config.model
    assert (model.preset, model.lora_rank) == ("hiera_b+", 32)
    # Routing per pixel over every present sensor (top-k 0): a lying sensor is weighed down,
    # not cut by rank; the paper's top-2 stays selectable (router: paper, router_top_k: 2).
    assert (model.router, model.fusion, model.router_top_k) == ("spatial", "router", 0)
    assert config.corruption.rate > 0
    assert model.modalities == ("rgb", "depth", "event", "lidar") and model.num_classes == 25
    assert model.image_size == (1024, 1024) and not model.train_encoder
    # The authors' group's optimiser recipe, and the ViT-B config's in everything but the encoder.
    assert (config.optim.lr, config.optim.poly_power) == (6e-4, 0.9)
    assert config.modality_dropout_mode == "subset" and config.normalization == "dataset"
    assert config.gradient_checkpointing
    vit = load_train_config(root / "config" / "train" / "deliver_vit_b.yaml").to_dict()
    hiera = config.to_dict()
    for key in ("description", "sam_checkpoint"):
        vit.pop(key), hiera.pop(key)
    assert vit["model"].pop("preset") == "vit_b" and hiera["model"].pop("preset") == "hiera_b+"
    assert vit["model"].pop("taps") != hiera["model"].pop("taps")  # each family's own taps
    assert hiera == vit
