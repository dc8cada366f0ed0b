"""AdamW with parameter groups and the warm-up + polynomial-decay learning-rate schedule."""

from __future__ import annotations

import torch
from torch import nn

from mlesam_ros.train.config import OptimConfig

# Parameters that are embeddings, whatever their shape: SAM's absolute and relative position
# embeddings, the decoder's class/IoU tokens, SAM's dense "no mask" embedding. Decaying them
# towards 0 erases position/identity information rather than regularising a mapping.
NO_DECAY_NAMES = ("pos_embed", "rel_pos_h", "rel_pos_w", "prompt_tokens")  # parameter names
NO_DECAY_MODULES = (nn.Embedding, nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d)


def no_weight_decay_names(model: nn.Module) -> set[str]:
    """Names of parameters trained without weight decay: biases, norms, embeddings, 1-d."""
    names = set()
    for module_name, module in model.named_modules():
        for name, parameter in module.named_parameters(recurse=False):
            full = f"{module_name}.{name}" if module_name else name
            kind = type(module).__name__.lower()
            norm_like = isinstance(module, NO_DECAY_MODULES) or "norm" in kind
            if parameter.ndim < 2 or norm_like or name in NO_DECAY_NAMES:
                names.add(full)
    return names


def build_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; no weight decay on biases, norms and embeddings."""
    decay, no_decay = [], []
    exempt = no_weight_decay_names(model)
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (no_decay if name in exempt else decay).append(parameter)
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
