"""AdamW with parameter groups and the warm-up + polynomial-decay learning-rate schedule."""

from __future__ import annotations

import torch
from torch import nn

from mlesam_ros.train.config import OptimConfig


def build_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; no weight decay on biases, norms and 1-d tensors."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    if not decay and not no_decay:
        raise ValueError("model: no trainable parameters (is everything frozen?)")
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


def warmup_poly_factor(step: int, total_steps: int, warmup_steps: int, power: float) -> float:
    """LR multiplier at ``step``: linear 0→1 over the warm-up, then ``(1 - t)^power`` to 0."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return (1.0 - progress) ** power


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: OptimConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` stepping once per optimiser step with ``warmup_poly_factor``."""
    warmup = min(config.warmup_steps, max(0, total_steps - 1))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: warmup_poly_factor(step, total_steps, warmup, config.poly_power),
    )
