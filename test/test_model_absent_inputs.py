"""Absent modalities: zeroed before the encoder, skipped in eager mode, decoded per subset."""

from __future__ import annotations

import itertools
from unittest import mock

import pytest
import torch

from mlesam_ros.model import MLESAMConfig, build_mlesam

SIZE = (32, 48)
MODALITIES = ("rgb", "depth", "thermal", "lidar")


def _model(**options: object) -> torch.nn.Module:
    torch.manual_seed(0)
    config = MLESAMConfig(preset="tiny", modalities=MODALITIES, num_classes=4, image_size=SIZE,
                          lora_rank=4, train_encoder=True, **options)  # fmt: skip
    model = build_mlesam(config)
    for name, parameter in model.named_parameters():
        if ".lora_b_" in name:
            torch.nn.init.normal_(parameter, std=0.05)
    return model


def _images(batch: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, len(MODALITIES), 3, *SIZE, generator=generator) * 255


PRESENT = torch.tensor([[True, False, True, False], [False, True, True, True]])


def _gradients(model, images, present) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)  # the same aux-head dropout mask every time
    model(images, present)["logits"].square().mean().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_nan_and_inf_in_absent_slots_give_the_same_finite_gradients() -> None:
    model = _model().train()
    images = _images(2)
    clean = _gradients(model, images, PRESENT)
    poisoned = images.clone()
    poisoned[0, 1] = float("nan")
    poisoned[0, 3] = float("inf")
    poisoned[1, 0] = -float("inf")
    # Every image encoded, as in a traced graph: the zeroing alone must keep NaN out.
    with mock.patch("mlesam_ros.model.mlesam._eager", return_value=False):
        dirty = _gradients(model, poisoned, PRESENT)
    assert clean.keys() == dirty.keys()
    assert any(".lora_a_q" in name for name in dirty)
    for name, grad in dirty.items():
        assert torch.isfinite(grad).all(), name
        torch.testing.assert_close(grad, clean[name], rtol=1e-4, atol=1e-6)


def test_skipping_absent_encoder_work_changes_no_output() -> None:
    model = _model().eval()
    present = torch.cat([PRESENT, torch.zeros(1, 4, dtype=torch.bool)])
    images = _images(3)
    with torch.no_grad():
        skipped = model(images, present)
        with mock.patch("mlesam_ros.model.mlesam._eager", return_value=False):
            full = model(images, present)
    for key in ("logits", "routing_weights"):
        torch.testing.assert_close(skipped[key], full[key], rtol=1e-4, atol=1e-5)


def test_encoder_skips_absent_images() -> None:
    model = _model().eval()
    seen = []
    hook = model.backbone.encoder.patch_embed.register_forward_hook(
        lambda module, inputs, output: seen.append(inputs[0].shape[0]))  # fmt: skip
    with torch.no_grad():
        model(_images(2), PRESENT)
    hook.remove()
    assert seen == [int(PRESENT.sum())]  # 5 of 8 images reach the ViT


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    model = _model().train()
    images = _images(2)
    reference = _gradients(model, images, PRESENT)
    model.backbone.gradient_checkpointing = True
    checkpointed = _gradients(model, images, PRESENT)
    assert reference.keys() == checkpointed.keys()
    for name, grad in checkpointed.items():
        torch.testing.assert_close(grad, reference[name], rtol=1e-4, atol=1e-6)


def test_encode_once_then_decode_each_subset_equals_the_full_forward() -> None:
    model = _model(router_top_k=2).eval()
    images = _images(1)
    with torch.no_grad():
        taps = model.encode(images, torch.ones(1, 4, dtype=torch.bool))
        for subset in ((0,), (3,), (1, 2), (0, 2, 3), (0, 1, 2, 3)):
            present = torch.zeros(1, 4, dtype=torch.bool)
            present[:, list(subset)] = True
            masked = torch.where(present[:, :, None, None, None], images, 0.0)
            direct = model(masked, present)
            decoded = model.decode(taps, present, SIZE)
            torch.testing.assert_close(decoded["logits"], direct["logits"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("router", ["paper", "softmax", "spatial"])
def test_top_k_routing_keeps_exactly_k_present_modalities(router: str) -> None:
    model = _model(router_top_k=2, router=router).eval()
    with torch.no_grad():
        taps = model.encode(_images(1), torch.ones(1, 4, dtype=torch.bool))
    features = taps[0].expand(15, -1, -1, -1, -1)
    subsets = [s for k in range(1, 5) for s in itertools.combinations(range(4), k)]
    present = torch.zeros(15, 4, dtype=torch.bool)
    for row, subset in enumerate(subsets):
        present[row, list(subset)] = True
    with torch.no_grad():
        routed = model.fusions[0].router(features, present)
    # Per sample (and per pixel for the spatial router): exactly min(2, present) weights > 0.
    expected = present.sum(-1).clamp(max=2).reshape((15,) + (1,) * (routed.dim() - 2))
    assert ((routed > 0).sum(1) == expected).all()
    absent = ~present.reshape(present.shape + (1,) * (routed.dim() - 2)).expand_as(routed)
    assert (routed[absent] == 0).all()
    torch.testing.assert_close(routed.sum(1), torch.ones_like(routed.sum(1)))


def test_normalisation_statistics_are_set_and_validated() -> None:
    model = _model()
    mean = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    std = torch.full((4, 3), 2.0)
    model.set_normalization(mean, std)
    assert torch.equal(model.pixel_mean.reshape(4, 3), mean)
    assert torch.equal(model.state_dict()["pixel_std"].reshape(4, 3), std)
    import pytest

    with pytest.raises(ValueError, match=r"must be \(4, 3\)"):
        model.set_normalization(mean[:2], std[:2])
    with pytest.raises(ValueError, match="std > 0"):
        model.set_normalization(mean, torch.zeros(4, 3))
