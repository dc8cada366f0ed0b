"""Training utilities: losses, modality dropout, parameter report and ``mlesam model-info``."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F

from mlesam_ros import cli
from mlesam_ros.model import (
    MLESAMConfig,
    MLESAMLoss,
    build_mlesam,
    modality_dropout,
    ohem_cross_entropy,
    parameter_report,
    random_presence,
)
from mlesam_ros.model.commands import modalities_argument


def _outputs(seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    outputs = {
        key: torch.randn(2, 4, 8, 8, generator=generator)
        for key in ("logits", "mask_logits", "aux_logits")
    }
    target = torch.randint(0, 4, (2, 8, 8), generator=generator)
    target[0, :3] = 255
    return outputs, target


def test_loss_is_weighted_cross_entropy_ignoring_255() -> None:
    outputs, target = _outputs()
    losses = MLESAMLoss(mask_weight=0.4, aux_weight=0.2)(outputs, target)
    expected = {key: F.cross_entropy(outputs[key], target, ignore_index=255) for key in outputs}
    for key, value in expected.items():
        torch.testing.assert_close(losses[f"loss_{key}"], value)
    total = expected["logits"] + 0.4 * expected["mask_logits"] + 0.2 * expected["aux_logits"]
    torch.testing.assert_close(losses["loss"], total)


def test_loss_with_every_pixel_ignored_is_zero_not_nan() -> None:
    outputs, target = _outputs()
    target[:] = 255
    assert MLESAMLoss()(outputs, target)["loss"].item() == 0.0


def test_zero_weight_drops_a_term() -> None:
    outputs, target = _outputs()
    losses = MLESAMLoss(mask_weight=0.0, aux_weight=0.0)(outputs, target)
    assert set(losses) == {"loss", "loss_logits"}


def test_ohem_averages_only_the_hard_pixels() -> None:
    outputs, target = _outputs(seed=1)
    logits = outputs["logits"]
    per_pixel = F.cross_entropy(logits, target, ignore_index=255, reduction="none")
    valid = per_pixel[target != 255]
    hard = valid[valid > -math.log(0.7)]
    assert 0 < hard.numel() < valid.numel()
    got = ohem_cross_entropy(logits, target, threshold=0.7, min_kept=1)
    torch.testing.assert_close(got, hard.mean())
    # min_kept above the hard count keeps the hardest min_kept valid pixels.
    kept = hard.numel() + 5
    got = ohem_cross_entropy(logits, target, threshold=0.7, min_kept=kept)
    torch.testing.assert_close(got, valid.sort(descending=True).values[:kept].mean())
    loss = MLESAMLoss(ohem_threshold=0.7, ohem_min_kept=1)(outputs, target)
    torch.testing.assert_close(loss["loss_logits"], hard.mean())


def test_modality_dropout_keeps_one_present_modality() -> None:
    generator = torch.Generator().manual_seed(0)
    present = torch.rand(500, 4, generator=generator) > 0.3
    present[:, 1] |= ~present.any(dim=1)
    dropped = modality_dropout(present, 0.9, generator=generator)
    assert not (dropped & ~present).any()  # never invents a modality
    assert dropped.any(dim=1).all()
    assert dropped.sum() < present.sum()
    # Rescued rows pick different modalities, not always the first present one.
    singles = dropped[dropped.sum(dim=1) == 1].float().argmax(dim=1)
    assert len(set(singles.tolist())) == 4


def test_modality_dropout_extremes_and_reproducibility() -> None:
    present = torch.ones(64, 3, dtype=torch.bool)
    assert torch.equal(modality_dropout(present, 0.0), present)
    assert (modality_dropout(present, 1.0).sum(dim=1) == 1).all()
    first = random_presence(64, 3, 0.5, generator=torch.Generator().manual_seed(7))
    again = random_presence(64, 3, 0.5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(first, again) and first.shape == (64, 3)
    with pytest.raises(ValueError, match="drop_prob"):
        modality_dropout(present, 1.5)


def test_parameter_report_accounts_for_every_parameter() -> None:
    model = build_mlesam(
        MLESAMConfig(preset="tiny", modalities=("rgb", "depth"), num_classes=3, lora_rank=4)
    )
    rows = {row.part: row for row in parameter_report(model)}
    total = rows.pop("total")
    assert total.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert total.frozen == sum(p.numel() for p in model.parameters() if not p.requires_grad)
    # 4 blocks x 2 experts x (A and B for Q and V) of size 96 x 4.
    assert rows["lora experts"].trainable == 4 * 2 * 4 * 96 * 4
    assert rows["encoder (SAM, SAM 2)"].trainable == 0
    assert rows["encoder (SAM, SAM 2)"].frozen == total.frozen
    assert "other" not in rows


def _trainable_from_output(text: str) -> int:
    match = re.search(r"trainable parameters: ([\d,]+)", text)
    assert match, text
    return int(match.group(1).replace(",", ""))


def test_model_info_tiny_matches_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli.main(
            [
                "model-info",
                "--preset",
                "tiny",
                "--modalities",
                "rgb,lidar",
                "--num-classes",
                "3",
                "--lora-rank",
                "4",
            ]
        )
        == 0
    )
    model = build_mlesam(
        MLESAMConfig(preset="tiny", modalities=("rgb", "lidar"), num_classes=3, lora_rank=4)
    )
    expected = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert _trainable_from_output(capsys.readouterr().out) == expected


def test_model_info_vit_b_four_modalities(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["model-info", "--preset", "vit_b", "--modalities", "4"]) == 0
    out = capsys.readouterr().out
    assert "rgb,depth,thermal,lidar" in out
    # 12 blocks x 4 experts x Q and V x (A + B) of 768 x 32: computed independently here.
    lora = re.search(r"lora experts\s+([\d,]+)", out)
    assert int(lora.group(1).replace(",", "")) == 12 * 4 * 2 * 2 * 768 * 32
    encoder = re.search(r"encoder \(SAM, SAM 2\)\s+0\s+([\d,]+)", out)
    assert int(encoder.group(1).replace(",", "")) == 89_670_912  # SAM ViT-B image encoder
    # Same range as the published ~20.8 M trainable parameters.
    assert 10e6 < _trainable_from_output(out) < 30e6


def test_modalities_argument_accepts_names_or_a_count(capsys) -> None:
    assert modalities_argument("3") == ("rgb", "depth", "thermal")
    assert modalities_argument("lidar,rgb") == ("lidar", "rgb")
    with pytest.raises(ValueError, match=r"a count must be 1\.\.5"):
        modalities_argument("6")
    assert cli.main(["model-info", "--preset", "tiny", "--modalities", "0"]) == 2
    assert "--modalities: a count must be" in capsys.readouterr().err


def test_subset_dropout_draws_every_subset_size_equally_often() -> None:
    import itertools
    from math import comb

    generator = torch.Generator().manual_seed(0)
    draws = 60000
    dropped = random_presence(draws, 4, 0.8, generator=generator, mode="subset")
    assert dropped.any(dim=1).all()
    rows = [tuple(r) for r in dropped.tolist()]
    for size in range(1, 5):
        for subset in itertools.combinations(range(4), size):
            mask = tuple(i in subset for i in range(4))
            expected = 0.8 / (4 * comb(4, size)) + (0.2 if size == 4 else 0.0)
            frequency = rows.count(mask) / draws
            # ~4 standard errors of a binomial frequency.
            assert abs(frequency - expected) < 4 * (expected / draws) ** 0.5, (mask, frequency)
    # Independent dropout at p = 0.3 (the old default) trains each single sensor ~2 % of the
    # time; the balanced scheme above gives each 5 %.
    independent = random_presence(draws, 4, 0.3, generator=generator)
    singles = (independent.sum(dim=1) == 1).float().mean() / 4
    assert singles < 0.025


def test_subset_dropout_only_keeps_present_modalities() -> None:
    generator = torch.Generator().manual_seed(1)
    present = torch.rand(2000, 4, generator=generator) > 0.4
    present[:, 0] |= ~present.any(dim=1)
    present[:5] = False  # nothing present stays nothing present
    dropped = modality_dropout(present, 1.0, generator=generator, mode="subset")
    assert not (dropped & ~present).any()
    assert dropped[5:].any(dim=1).all() and not dropped[:5].any()
    # With one present modality nothing can be dropped; with three, all sizes 1..3 occur.
    three = present.sum(dim=1) == 3
    assert set(dropped[three].sum(dim=1).tolist()) == {1, 2, 3}
    with pytest.raises(ValueError, match="mode: unknown 'balanced'"):
        modality_dropout(present, 0.5, mode="balanced")
