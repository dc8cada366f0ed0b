"""LoRA experts inside SAM's encoder: frozen weights, stock parity, batched = separate passes."""

from __future__ import annotations

import torch

from mlesam_ros.modalities import PIXEL_MEAN, PIXEL_STD
from mlesam_ros.model import MLESAMConfig, MLESAMLoss, build_mlesam
from mlesam_ros.model.backbone import build_image_encoder
from mlesam_ros.model.presets import get_preset

MODALITIES = ("rgb", "depth", "thermal")
NATIVE = (128, 128)  # tiny's native size: the stock encoder runs only there


def _model(**options: object) -> torch.nn.Module:
    torch.manual_seed(0)
    values = {
        "preset": "tiny",
        "modalities": MODALITIES,
        "num_classes": 4,
        "image_size": NATIVE,
        "lora_rank": 4,
        "lora_alpha": 8.0,
        **options,
    }
    return build_mlesam(MLESAMConfig(**values))


def _images(batch: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    return torch.rand(batch, len(MODALITIES), 3, *NATIVE, generator=generator) * 255


def _normalised(images: torch.Tensor, index: int) -> torch.Tensor:
    name = MODALITIES[index]
    mean = torch.tensor(PIXEL_MEAN[name]).reshape(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD[name]).reshape(1, 3, 1, 1)
    return (images[:, index] - mean) / std


def _stock_encoder(model: torch.nn.Module, expert: int | None) -> torch.nn.Module:
    """segment-anything's ImageEncoderViT with our frozen weights, LoRA merged if ``expert``."""
    stock = build_image_encoder(get_preset("tiny"))
    state = {}
    for key, value in model.backbone.encoder.state_dict().items():
        if ".lora_" not in key:
            state[key.replace(".qkv.base.", ".qkv.")] = value.clone()
    if expert is not None:
        for index, block in enumerate(model.backbone.encoder.blocks):
            lora = block.attn.qkv
            dim = lora.base.in_features
            weight = state[f"blocks.{index}.attn.qkv.weight"]
            # y = x W^T; the expert adds x A B to Q and V, i.e. (A B)^T to their weight rows.
            weight[:dim] += lora.scale * (lora.lora_a_q[expert] @ lora.lora_b_q[expert]).T
            weight[2 * dim :] += lora.scale * (lora.lora_a_v[expert] @ lora.lora_b_v[expert]).T
    stock.load_state_dict(state, strict=True)
    return stock.eval()


def test_zero_b_experts_reproduce_the_stock_sam_encoder() -> None:
    model = _model().eval()
    images = _images(2)
    with torch.no_grad():
        taps = model.encode(images)
        for index in range(len(MODALITIES)):
            ours = model.backbone.neck(taps[-1][:, index])
            stock = _stock_encoder(model, None)(_normalised(images, index))
            torch.testing.assert_close(ours, stock, rtol=0, atol=1e-5)


def test_batched_experts_equal_separate_per_modality_passes() -> None:
    model = _model().eval()
    for name, parameter in model.named_parameters():
        if ".lora_b_" in name:
            torch.nn.init.normal_(parameter, std=0.05)
    images = _images(2)
    with torch.no_grad():
        taps = model.encode(images)
        outputs = [model.backbone.neck(taps[-1][:, m]) for m in range(len(MODALITIES))]
        for index in range(len(MODALITIES)):
            separate = _stock_encoder(model, index)(_normalised(images, index))
            torch.testing.assert_close(outputs[index], separate, rtol=0, atol=1e-5)
        # The experts matter: modality 0's expert applied to modality 1's pixels differs.
        crossed = _stock_encoder(model, 0)(_normalised(images, 1))
        assert (crossed - outputs[1]).abs().max() > 1e-3


def test_only_adapter_parameters_are_trainable_and_get_gradients() -> None:
    model = _model(image_size=(64, 64)).train()
    images = torch.rand(2, len(MODALITIES), 3, 64, 64) * 255
    present = torch.tensor([[True, False, True], [True, True, True]])
    target = torch.randint(0, 4, (2, 64, 64))
    target[:, :8] = 255
    losses = MLESAMLoss()(model(images, present), target)
    losses["loss"].backward()

    trainable_parts = set()
    for name, parameter in model.named_parameters():
        in_encoder = name.startswith("backbone.")
        if in_encoder and ".lora_" not in name:
            assert not parameter.requires_grad, name
            assert parameter.grad is None, name
        else:
            assert parameter.requires_grad, name
            assert parameter.grad is not None, name
            trainable_parts.add(name.split(".")[0])
    assert trainable_parts == {"backbone", "fusions", "pyramid", "mask_decoder", "aux_head"}
    lora_b_grads = [p.grad.abs().sum() for n, p in model.named_parameters() if ".lora_b_" in n]
    assert len(lora_b_grads) == 4 * 2 and all(g > 0 for g in lora_b_grads)


def test_train_encoder_unfreezes_the_vit() -> None:
    model = _model(train_encoder=True)
    assert all(p.requires_grad for p in model.backbone.parameters())
