"""Routers: exact top-k, float32 under autocast, exact absent invariance, and room to route."""

from __future__ import annotations

import math

import pytest
import torch

from mlesam_ros.model.config import MLESAMConfig, legacy_checkpoint_config
from mlesam_ros.model.router import (
    ROUTERS,
    ModalityFusion,
    build_router,
    leave_one_out_mean,
    masked_softmax,
    top_k_mask,
)

DIM = 16


def _features(batch: int = 2, modalities: int = 4, size: int = 4, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, modalities, DIM, size, size, generator=generator)


def _perturbed(router: torch.nn.Module, seed: int = 3) -> torch.nn.Module:
    """A router whose (zero-initialised) score layer no longer ties every modality."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in router.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return router


def test_top_k_keeps_exactly_k_when_scores_tie() -> None:
    scores = torch.tensor([[0.5, 0.5, 0.5, 0.1], [1.0, 1.0, 1.0, 1.0], [0.2, 0.9, 0.9, 0.9]])
    present = torch.ones(3, 4, dtype=torch.bool)
    kept = top_k_mask(scores, present, 2)
    # Ties go to the lower index, deterministically.
    assert kept.tolist() == [[True, True, False, False], [True, True, False, False],
                             [False, True, True, False]]  # fmt: skip


def test_top_k_ranks_only_present_modalities() -> None:
    scores = torch.tensor([[9.0, 1.0, 2.0, 3.0], [5.0, 5.0, 0.0, 0.0]])
    present = torch.tensor([[False, True, True, True], [False, True, False, False]])
    kept = top_k_mask(scores, present, 2)
    assert kept.tolist() == [[False, False, True, True], [False, True, False, False]]


def test_top_k_per_pixel_for_spatial_scores() -> None:
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 3, (2, 4, 5, 6), generator=generator).float()  # many ties
    present = torch.tensor([[True, True, True, True], [True, False, True, False]])
    kept = top_k_mask(scores, present, 3)
    expected = present.sum(1).clamp(max=3).reshape(2, 1, 1)
    assert (kept.sum(1) == expected).all()
    assert not kept[1, 1].any() and not kept[1, 3].any()


@pytest.mark.parametrize("router", ROUTERS)
def test_exactly_k_under_bf16_autocast(router: str) -> None:
    fusion = ModalityFusion(DIM, "router", top_k=2, router=router)
    _perturbed(fusion)
    # Saturating features: the paper's sigmoid scores all round to 1.0 in bf16.
    features = (_features(4) * 50).to(torch.bfloat16)
    present = torch.ones(4, 4, dtype=torch.bool)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        weights = fusion.router(features, present)
    assert weights.dtype == torch.float32
    assert ((weights > 0).sum(1) == 2).all()


@pytest.mark.parametrize("router", ROUTERS)
def test_router_runs_in_float32_under_autocast(router: str) -> None:
    module = _perturbed(build_router(router, DIM))
    features = _features()
    present = torch.tensor([[True, True, False, True], [True, True, True, True]])
    reference = module(features, present)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = module(features, present)
    assert autocast.dtype == torch.float32
    # bf16 maths would be off by ~1e-2 here; float32 maths agrees to rounding.
    torch.testing.assert_close(autocast, reference, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("router", ROUTERS)
@pytest.mark.parametrize("mode", ["router", "both"])
def test_absent_modalities_have_exactly_no_influence(router: str, mode: str) -> None:
    fusion = _perturbed(ModalityFusion(DIM, mode, router=router)).eval()
    features = _features(3)
    present = torch.tensor([[True, False, True, False], [False, False, False, True],
                            [True, True, True, False]])  # fmt: skip
    poisoned = features.clone()
    poisoned[~present] = float("nan")
    poisoned[2, 3] = 1e30
    fused, weights = fusion(features, present)
    dirty_fused, dirty_weights = fusion(poisoned, present)
    assert torch.equal(fused, dirty_fused)
    assert torch.equal(weights, dirty_weights)
    assert (weights[~present] == 0).all()
    torch.testing.assert_close(weights.sum(1), torch.ones(3))


def test_nothing_present_gives_zero_features_not_nan() -> None:
    fusion = _perturbed(ModalityFusion(DIM, "router", router="spatial"))
    fused, weights = fusion(_features(1), torch.zeros(1, 4, dtype=torch.bool))
    assert torch.equal(fused, torch.zeros_like(fused))
    assert torch.equal(weights, torch.zeros_like(weights))


def test_leave_one_out_mean_excludes_self_and_absent() -> None:
    features = torch.tensor([[[1.0], [2.0], [4.0], [0.0]]])  # (1, 4, 1)
    present = torch.tensor([[True, True, True, False]])
    others = leave_one_out_mean(features, present)
    assert others[0, :, 0].tolist() == pytest.approx([3.0, 2.5, 1.5, 7 / 3])


def test_masked_softmax_over_pixels() -> None:
    scores = torch.zeros(1, 3, 2, 2)
    present = torch.tensor([[True, False, True]])
    weights = masked_softmax(scores, present)
    assert torch.equal(weights[:, 1], torch.zeros(1, 2, 2))
    torch.testing.assert_close(weights.sum(1), torch.ones(1, 2, 2))


def _train_to_ignore_noise(router: str, steps: int = 150) -> float:
    """Fit a fusion whose target is the clean modalities' mean; return the weight on noise.

    Three modalities carry the same signal (plus a little noise of their own), the fourth is
    pure noise. A router that can route learns to give the noisy one almost nothing.
    """
    torch.manual_seed(0)
    fusion = ModalityFusion(DIM, "router", router=router)
    optimiser = torch.optim.Adam(fusion.parameters(), lr=0.05)
    present = torch.ones(16, 4, dtype=torch.bool)
    for _ in range(steps):
        signal = torch.randn(16, 1, DIM, 4, 4)
        clean = signal + 0.1 * torch.randn(16, 3, DIM, 4, 4)
        noise = 3.0 * torch.randn(16, 1, DIM, 4, 4)
        features = torch.cat([clean, noise], dim=1)
        fused, _ = fusion(features, present)
        loss = (fused - signal[:, 0]).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        _, weights = fusion(features, present)
    return float(weights[:, 3].mean())


@pytest.mark.parametrize("router", ["softmax", "spatial"])
def test_new_routers_learn_to_outweigh_a_noisy_modality(router: str) -> None:
    assert _train_to_ignore_noise(router) < 0.05


def test_paper_router_cannot_go_below_its_ratio_cap() -> None:
    # Sigmoid scores in (0, 1) → softmax weight ratios below e: the noisy modality keeps at
    # least 1 / (1 + 3e) of the mix whatever training does.
    floor = 1 / (1 + 3 * math.e)
    assert _train_to_ignore_noise("paper") >= floor - 1e-3


def test_checkpoints_without_a_router_field_load_as_the_paper_router() -> None:
    stored = MLESAMConfig(preset="tiny", modalities=("rgb", "depth"), image_size=(32, 32),
                          fusion="both", router="paper").to_dict()  # fmt: skip
    del stored["router"]
    assert MLESAMConfig.from_dict(legacy_checkpoint_config(stored)).router == "paper"
    # A config written today without the field gets today's default instead.
    assert MLESAMConfig.from_dict(stored).router == MLESAMConfig.router


def test_unknown_router_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="router: unknown 'gated'; choose from paper, softmax"):
        MLESAMConfig(preset="tiny", router="gated")


@pytest.mark.parametrize("mode", ["router", "both"])
def test_mean_mode_removes_a_trained_router(mode: str) -> None:
    fusion = _perturbed(ModalityFusion(DIM, mode, router="spatial"))
    features = _features()
    present = torch.tensor([[True, True, False, True], [True, True, True, True]])
    routed, _ = fusion(features, present)
    fusion.mode = "mean"
    fused, weights = fusion(features, present)
    expected = features[:, :, :].mul(present[:, :, None, None, None]).sum(1)
    expected = expected / present.sum(1).reshape(2, 1, 1, 1)
    torch.testing.assert_close(fused, expected)
    assert not torch.allclose(fused, routed)
    torch.testing.assert_close(weights[0], torch.tensor([1 / 3, 1 / 3, 0.0, 1 / 3]))
