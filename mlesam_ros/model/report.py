"""Parameter counts per model part, trainable vs frozen (``mlesam model-info``)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

# Part of a parameter, decided from its name; first match wins.
PARTS = (
    ("lora experts", lambda name: ".lora_" in name),
    ("encoder (SAM, SAM 2)", lambda name: name.startswith("backbone.")),
    ("routers", lambda name: name.startswith("fusions.")),
    ("pyramid", lambda name: name.startswith("pyramid.")),
    ("mask decoder", lambda name: name.startswith("mask_decoder.")),
    ("aux head", lambda name: name.startswith("aux_head.")),
)


@dataclass
class PartCount:
    """Trainable and frozen parameter counts of one part."""

    part: str
    trainable: int = 0
    frozen: int = 0


def parameter_report(model: nn.Module) -> list[PartCount]:
    """Count parameters per part (``PARTS`` order, then ``other``), then a ``total`` row."""
    rows = {part: PartCount(part) for part, _ in PARTS}
    rows["other"] = PartCount("other")
    for name, parameter in model.named_parameters():
        part = next((p for p, matches in PARTS if matches(name)), "other")
        if parameter.requires_grad:
            rows[part].trainable += parameter.numel()
        else:
            rows[part].frozen += parameter.numel()
    counts = [row for row in rows.values() if row.trainable or row.frozen]
    total = PartCount("total", sum(r.trainable for r in counts), sum(r.frozen for r in counts))
    return [*counts, total]


def format_report(rows: list[PartCount]) -> str:
    """Render the report as a fixed-width table of exact counts."""
    lines = [f"{'part':<20} {'trainable':>13} {'frozen':>13}"]
    for row in rows:
        if row.part == "total":
            lines.append("-" * len(lines[0]))
        lines.append(f"{row.part:<20} {row.trainable:>13,} {row.frozen:>13,}")
    return "\n".join(lines)
