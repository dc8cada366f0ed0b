"""The sensor modalities MLE-SAM knows, and how each is normalised at the model's input.

Every modality reaches the model as a 3-channel float image with values in [0, 255] (RGB as
is; depth as HHA or encoded depth; thermal replicated; LiDAR as depth/intensity/height; event
as DELIVER's event frames). The model subtracts ``PIXEL_MEAN`` and divides by ``PIXEL_STD``
itself, so exported engines take raw pixels and the runtime does no per-modality maths.
"""

from __future__ import annotations

from collections.abc import Iterable

MODALITIES: tuple[str, ...] = ("rgb", "depth", "thermal", "lidar", "event")

# RGB uses SAM's own statistics (the frozen encoder was trained on them); the other modalities
# are centred at mid-grey because their encodings spread over the whole 0..255 range.
PIXEL_MEAN: dict[str, tuple[float, float, float]] = {
    "rgb": (123.675, 116.28, 103.53),
    "depth": (127.5, 127.5, 127.5),
    "thermal": (127.5, 127.5, 127.5),
    "lidar": (127.5, 127.5, 127.5),
    "event": (127.5, 127.5, 127.5),
}
PIXEL_STD: dict[str, tuple[float, float, float]] = {
    "rgb": (58.395, 57.12, 57.375),
    "depth": (64.0, 64.0, 64.0),
    "thermal": (64.0, 64.0, 64.0),
    "lidar": (64.0, 64.0, 64.0),
    "event": (64.0, 64.0, 64.0),
}


def parse_modalities(names: str | Iterable[str]) -> tuple[str, ...]:
    """Validate modality names (a comma-separated string or a sequence) and keep their order.

    Raises ``ValueError`` naming the bad entry and the accepted names, because a typo here
    would otherwise surface much later as a shape mismatch.
    """
    items = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    items = [n for n in items if n]
    if not items:
        raise ValueError(f"modalities: need at least one of {', '.join(MODALITIES)}")
    unknown = [n for n in items if n not in MODALITIES]
    if unknown:
        raise ValueError(
            f"modalities: unknown {', '.join(unknown)}; choose from {', '.join(MODALITIES)}"
        )
    if len(set(items)) != len(items):
        raise ValueError(f"modalities: duplicate entries in {', '.join(items)}")
    return tuple(items)
