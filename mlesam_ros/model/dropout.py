"""Modality dropout: random presence masks so the model learns to work with missing sensors."""

from __future__ import annotations

import torch


def modality_dropout(
    present: torch.Tensor, drop_prob: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Drop each present modality with ``drop_prob``, always keeping at least one of them.

    ``present`` is (B, M) bool; a row that would lose every modality keeps one present
    modality picked uniformly at random. Rows with nothing present stay empty.
    """
    if not 0.0 <= drop_prob <= 1.0:
        raise ValueError(f"drop_prob: must be in [0, 1], got {drop_prob}")
    present = present.to(torch.bool)
    device = present.device
    kept = present & (torch.rand(present.shape, generator=generator, device=device) >= drop_prob)
    # One random present modality per row: the largest random score among the present ones.
    scores = torch.rand(present.shape, generator=generator, device=device)
    scores = torch.where(present, scores, torch.full_like(scores, -1.0))
    rescue = torch.nn.functional.one_hot(scores.argmax(dim=1), present.shape[1]).bool()
    lost_all = ~kept.any(dim=1, keepdim=True)
    return kept | (rescue & present & lost_all)


def random_presence(
    batch_size: int,
    num_modalities: int,
    drop_prob: float,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Draw a (B, M) presence mask: each modality dropped at ``drop_prob``, ≥ 1 kept per row."""
    full = torch.ones(batch_size, num_modalities, dtype=torch.bool, device=device)
    return modality_dropout(full, drop_prob, generator)
