"""Human-readable evaluation reports: Markdown tables for the terminal/README and a PNG.

The combination table mirrors the paper's: one row per modality subset with a check mark per
present modality, the mIoU, and the mIoU per condition. "mIoU" is DELIVER's convention (every
class, unseen ones 0), "present" the mean over the classes that occur (see
``mlesam_ros.train.metrics``). matplotlib (Agg) loads only when a plot is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mlesam_ros.train.evaluate import EvaluationResult, SubsetResult

SHORT_NAMES = {"rgb": "RGB", "depth": "D", "thermal": "T", "lidar": "L", "event": "E"}


def _percent(value: float | None) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{100 * value:.1f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Render a padded Markdown table (readable as plain text too)."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = (str(c).ljust(w) for c, w in zip(cells, widths, strict=True))
        return "| " + " | ".join(padded) + " |"

    separator = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), separator, *(line(r) for r in rows)])


def combination_table(result: EvaluationResult) -> str:
    """Rows = modality combinations; columns = presence marks, mIoU, accuracy, conditions."""
    conditions = result.conditions
    header = [SHORT_NAMES.get(m, m) for m in result.modalities]
    header += ["mIoU", "present", "pixel acc", *conditions]
    rows = []
    for subset in result.subsets:
        marks = ["✓" if present else "" for present in subset.mask]
        per_condition = [
            _percent(subset.per_condition[c].miou("all")) if c in subset.per_condition else "-"
            for c in conditions
        ]
        rows.append([*marks, _percent(subset.overall.miou("all")),
                     _percent(subset.overall.miou("present")),
                     _percent(subset.overall.pixel_accuracy()), *per_condition])  # fmt: skip
    return markdown_table(header, rows)


def routing_table(result: EvaluationResult, subset: SubsetResult | None = None) -> str:
    """Mean routing weight per modality and per-level spread, per condition, for ``subset``.

    Weights are the fused ones the model used (in ``both`` fusion, half router, half uniform).
    Empty when the predictor gave no weights (e.g. an exported engine).
    """
    subset = subset or result.full
    if not subset.routing:
        return ""
    names = [SHORT_NAMES.get(m, m) for m, p in zip(result.modalities, subset.mask, strict=True)
             if p]  # fmt: skip
    columns = [i for i, p in enumerate(subset.mask) if p]
    levels = next(iter(subset.routing.values())).weight_sum.shape[0]
    header = ["condition", *(f"w {n}" for n in names),
              *(f"spread L{level}" for level in range(levels))]  # fmt: skip
    rows = []
    for condition, stats in sorted(subset.routing.items()):
        weights = stats.mean_weights.mean(axis=0)  # over levels
        rows.append([condition, *(f"{weights[c]:.3f}" for c in columns),
                     *(f"{v:.3f}" for v in stats.mean_spread)])  # fmt: skip
    return markdown_table(header, rows)


def class_table(result: EvaluationResult) -> str:
    """Per-class IoU of the largest combination (classes absent from the data shown as -)."""
    iou = result.full.overall.per_class_iou()
    rows = [[name, _percent(value)] for name, value in zip(result.class_names, iou, strict=True)]
    return markdown_table(["class", "IoU"], rows)


def _seconds(result: EvaluationResult) -> str:
    return "" if result.seconds is None else f" in {result.seconds:.1f} s"


def format_report(result: EvaluationResult) -> str:
    """Render the text report: headline, combination table, per-class table."""
    full = result.full
    lines = [
        f"{result.frames} frames x {len(result.subsets)} combinations{_seconds(result)}; "
        f"all-modality ({full.name}) mIoU {_percent(full.overall.miou('all'))} "
        f"(all {len(result.class_names)} classes, DELIVER convention), "
        f"{_percent(full.overall.miou('present'))} over the classes present, "
        f"pixel accuracy {_percent(full.overall.pixel_accuracy())}",
    ]
    if len(result.subsets) > 1:
        first = result.modalities[0]
        without = result.mean_miou_without(first)
        if without is not None:
            count = sum(first not in s.modalities for s in result.subsets)
            lines.append(
                f"mean mIoU over the {count} combinations without {first}: {_percent(without)}"
            )
        lines += ["", "mIoU (%) per modality combination (✓ = present) and condition "
                      "(mIoU and conditions: all classes; present: classes that occur):"]
        lines.append(combination_table(result))
    routing = routing_table(result)
    if routing:
        lines += ["", f"Routing weights, {full.name} (mean over levels) and per-level spread "
                      "(max - min over present modalities), per condition:", routing]
    lines += ["", f"IoU (%) per class, {full.name}:", class_table(result)]
    return "\n".join(lines)


def write_plot(result: EvaluationResult, path: str | Path) -> Path:
    """PNG: per-class IoU bars (all modalities) and a combination × condition mIoU heatmap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    iou = result.full.overall.per_class_iou()
    conditions = ["all", *result.conditions]
    grid = np.array([
        [s.overall.miou("all")] + [s.per_condition[c].miou("all") if c in s.per_condition
                                   else np.nan
                              for c in result.conditions]
        for s in result.subsets
    ]) * 100  # fmt: skip
    height = max(5.0, 0.32 * len(result.subsets) + 2)
    figure, (bars, heat) = plt.subplots(1, 2, figsize=(15, height),
                                        gridspec_kw={"width_ratios": [1.2, 1]})  # fmt: skip
    positions = np.arange(len(result.class_names))
    bars.barh(positions, np.nan_to_num(iou) * 100, color="tab:blue")
    bars.set_yticks(positions, result.class_names, fontsize=7)
    bars.invert_yaxis()
    bars.set_xlim(0, 100)
    bars.set_xlabel("IoU (%)")
    full_miou = _percent(result.full.overall.miou("all"))
    bars.set_title(f"Per-class IoU, {result.full.name} (mIoU {full_miou})")
    top = max(1.0, float(np.nanmax(grid))) if np.isfinite(grid).any() else 1.0
    image = heat.imshow(grid, vmin=0, vmax=top, cmap="viridis", aspect="auto")
    heat.set_xticks(np.arange(len(conditions)), conditions, rotation=30)
    labels = ["+".join(SHORT_NAMES.get(m, m) for m in s.modalities) for s in result.subsets]
    heat.set_yticks(np.arange(len(labels)), labels, fontsize=8)
    for row, col in np.ndindex(grid.shape):
        if np.isfinite(grid[row, col]):
            heat.text(col, row, f"{grid[row, col]:.0f}", ha="center", va="center",
                      color="white", fontsize=7)  # fmt: skip
    heat.set_title("mIoU (%) by modality combination and condition")
    figure.colorbar(image, ax=heat, fraction=0.04)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
