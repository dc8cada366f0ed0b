"""Modality dropout: random presence masks so the model learns to work with missing sensors.

Two schemes. ``independent`` drops each present modality with probability p; with 4
modalities and p = 0.3 a single-modality subset is drawn for only ~2 % of samples, although
an evaluation over all 15 subsets weighs it like the full set. ``subset`` (balanced) applies
dropout to a sample with probability p and then draws the number of modalities to keep
uniformly from 1..n_present and which ones uniformly, so every subset size is trained
equally often.
"""

from __future__ import annotations

import torch

DROPOUT_MODES = ("independent", "subset")


def modality_dropout(
    present: torch.Tensor,
    drop_prob: float,
    generator: torch.Generator | None = None,
    mode: str = "independent",
) -> torch.Tensor:
    """Drop present modalities (see the module docstring), always keeping at least one.

    ``present`` is (B, M) bool. ``independent``: each present modality is dropped with
    ``drop_prob``; a row that would lose every modality keeps one present modality picked
    uniformly at random. ``subset``: a row is re-drawn with probability ``drop_prob`` as a
    uniformly sized, uniformly chosen non-empty subset of its present modalities. Rows with
    nothing present stay empty.
    """
    if not 0.0 <= drop_prob <= 1.0:
        raise ValueError(f"drop_prob: must be in [0, 1], got {drop_prob}")
    if mode not in DROPOUT_MODES:
        raise ValueError(f"mode: unknown {mode!r}; choose from {', '.join(DROPOUT_MODES)}")
    present = present.to(torch.bool)
    if mode == "subset":
        return _subset_dropout(present, drop_prob, generator)
    device = present.device
    kept = present & (torch.rand(present.shape, generator=generator, device=device) >= drop_prob)
    # One random present modality per row: the largest random score among the present ones.
    scores = torch.rand(present.shape, generator=generator, device=device)
    scores = torch.where(present, scores, torch.full_like(scores, -1.0))
    rescue = torch.nn.functional.one_hot(scores.argmax(dim=1), present.shape[1]).bool()
    lost_all = ~kept.any(dim=1, keepdim=True)
    return kept | (rescue & present & lost_all)


def _subset_dropout(
    present: torch.Tensor, drop_prob: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Balanced subsets: keep k ~ U{1..n} of the n present modalities, chosen uniformly."""
    device = present.device
    rows = present.shape[0]
    available = present.sum(dim=1)
    draw = torch.rand(rows, generator=generator, device=device)
    keep_count = (draw * available).floor().long() + 1  # uniform in 1..n (n >= 1)
    # A uniform random order of the present modalities: rank random scores, absent last.
    scores = torch.rand(present.shape, generator=generator, device=device)
    scores = torch.where(present, scores, torch.full_like(scores, 2.0))
    rank = scores.argsort(dim=1).argsort(dim=1)
    chosen = present & (rank < keep_count[:, None])
    apply = torch.rand(rows, generator=generator, device=device) < drop_prob
    return torch.where(apply[:, None], chosen, present)


def random_presence(
    batch_size: int,
    num_modalities: int,
    drop_prob: float,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    mode: str = "independent",
) -> torch.Tensor:
    """Draw a (B, M) presence mask with ``modality_dropout`` from all-present; ≥ 1 kept."""
    full = torch.ones(batch_size, num_modalities, dtype=torch.bool, device=device)
    return modality_dropout(full, drop_prob, generator, mode)
