"""Robustness of models side by side: clean, every sensor corrupted, every sensor absent.

For each checkpoint, on the same held-out synthetic frames:

- the missing-modality protocol (all-sensor mIoU, mean over the 15 sensor subsets, mean
  over the 7 subsets without RGB);
- the robustness table: for each sensor × corruption (``mlesam_ros.data.corruptions``, at
  one severity), mIoU with that sensor corrupted and with it absent — a fusion that routes
  never lets the corrupted cell fall below the absent one;
- with ``--ablate``, the same with every router removed (each level's fusion forced to the
  uniform mean over present sensors), which says whether the router is what helps;
- mean routing weight per sensor and condition, clean, and for each corrupted cell.

Everything goes to ``--out`` (``robustness.json``, ``robustness.md``). The README's tables
come from this command, e.g.::

    python benchmarks/bench_robustness.py --checkpoint before=old.pt \\
        --checkpoint after=models/mlesam_demo_tiny.pt --frames 250 --ablate --out runs/robust

On a CPU the decoders dominate (~40 decodes per batch of frames); a GPU (``--device cuda``)
takes a few minutes for 250 frames.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from mlesam_ros.data.corruptions import Corruption
from mlesam_ros.model import load_checkpoint
from mlesam_ros.train.data import build_eval_dataset
from mlesam_ros.train.distributed import resolve_device
from mlesam_ros.train.evaluate import evaluate, torch_predictor
from mlesam_ros.train.report import SHORT_NAMES, markdown_table
from mlesam_ros.train.robustness import evaluate_robustness, robustness_table, table_cells
from mlesam_ros.train.trainer import class_names_for

# The README's table: seven corruptions per sensor (every kind is available with --kinds all).
TABLE_KINDS = {
    "rgb": ("motion_blur", "overexposure", "underexposure", "frozen", "constant", "noise",
            "occlusion"),
    "depth": ("frozen", "constant", "black", "noise", "occlusion", "dropout", "extrinsic"),
    "thermal": ("motion_blur", "overexposure", "frozen", "constant", "black", "noise",
                "extrinsic"),
    "lidar": ("jitter", "frozen", "constant", "noise", "occlusion", "dropout", "extrinsic"),
}  # fmt: skip


def cells_for(
    modalities: tuple[str, ...], severity: int, kinds: str, sensors: str | None = None
) -> list[Corruption]:
    """The table's cells: the README set, or every kind that applies (``--kinds all``).

    ``sensors`` (comma-separated) keeps only those sensors' rows.
    """
    if sensors:
        wanted = {s.strip() for s in sensors.split(",")}
        unknown = sorted(wanted - set(modalities))
        if unknown:
            raise SystemExit(f"--sensors: {', '.join(unknown)} not among {', '.join(modalities)}")
        modalities = tuple(m for m in modalities if m in wanted)
    if kinds == "all":
        return table_cells(modalities, severity)
    return [Corruption(m, k, severity) for m in modalities for k in TABLE_KINDS.get(m, ())]


def remove_routers(model: torch.nn.Module) -> None:
    """Make every level fuse by the uniform mean over present sensors (router ignored)."""
    for fusion in model.fusions:
        fusion.mode = "mean"


def score(model, dataset, modalities, names, cells, batch_size, device) -> dict:
    """Protocol + robustness of one model (one routing mode) on ``dataset``."""
    predictor = torch_predictor(model, device)
    protocol = evaluate(predictor, dataset, modalities, names, batch_size=batch_size,
                        progress=False)  # fmt: skip
    robustness = evaluate_robustness(predictor, dataset, modalities, names, cells,
                                     batch_size=batch_size, progress=False)  # fmt: skip
    full = protocol.full
    return {
        "clean_all": round(100 * full.overall.miou("all"), 2),
        "mean_of_subsets": round(
            100 * float(np.mean([s.overall.miou("all") for s in protocol.subsets])), 2
        ),
        "mean_without_rgb": (None if "rgb" not in modalities
                             else round(100 * protocol.mean_miou_without("rgb"), 2)),
        "routing_per_condition": {
            condition: np.round(stats.mean_weights.mean(axis=0), 3).tolist()
            for condition, stats in sorted(full.routing.items())
        },
        "robustness": robustness.to_dict(),
        "_robustness": robustness,
    }  # fmt: skip


def main() -> None:
    """Parse arguments, score each checkpoint, write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", action="append", required=True, metavar="NAME=PATH",
                        help="a model to score, named in the tables (repeatable)")
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--seed", type=int, default=1000, help="held-out street seed")
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--kinds", choices=("table", "all"), default="table",
                        help="the README's 7 corruptions per sensor, or every kind")
    parser.add_argument("--sensors", help="only these sensors' rows, e.g. lidar,depth")
    parser.add_argument("--ablate", action="store_true", help="also score with routers removed")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--out", type=Path, default=Path("runs/robustness"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    models = dict(item.split("=", 1) for item in args.checkpoint)
    started = time.perf_counter()
    report: dict = {"frames": args.frames, "severity": args.severity, "device": str(device),
                    "machine": f"{platform.processor() or platform.machine()}, "
                               f"{torch.get_num_threads()} torch threads",
                    "models": {}}  # fmt: skip
    tables, dataset = {}, None
    for name, path in models.items():
        model, extra = load_checkpoint(path, map_location=device)
        config = model.config
        names = extra.get("class_names") or class_names_for(config.num_classes)
        if dataset is None:
            dataset = build_eval_dataset("synthetic", None, config.modalities,
                                         tuple(config.image_size), frames=args.frames,
                                         seed=args.seed)  # fmt: skip
            dataset.keep_frames = True  # rendered once, scored many times
            cells = cells_for(config.modalities, args.severity, args.kinds, args.sensors)
        entry = {"checkpoint": path, "router": config.router, "fusion": config.fusion}
        entry["kept"] = score(model, dataset, config.modalities, names, cells,
                              args.batch_size, device)  # fmt: skip
        tables[name] = entry["kept"].pop("_robustness")
        routed = any(fusion.router is not None for fusion in model.fusions)
        if args.ablate and routed:
            remove_routers(model)
            entry["removed"] = score(model, dataset, config.modalities, names, cells,
                                     args.batch_size, device)  # fmt: skip
            tables[f"{name} (no router)"] = entry["removed"].pop("_robustness")
        report["models"][name] = entry
        print(f"{name}: clean {entry['kept']['clean_all']}, without RGB "
              f"{entry['kept']['mean_without_rgb']}, corrupted < absent in "
              f"{entry['kept']['robustness']['cells_worse_than_absent']} of {len(cells)} "
              f"cells", flush=True)  # fmt: skip
    report["seconds"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "robustness.json").write_text(json.dumps(report, indent=1) + "\n")
    markdown = [robustness_table({n: tables[n] for n in models}), "", summary_table(report)]
    if args.ablate:
        markdown += ["", ablation_table(report)]
    markdown += ["", routing_table(report)]
    (args.out / "robustness.md").write_text("\n".join(markdown) + "\n")
    print("\n".join(markdown))
    print(f"wrote {args.out / 'robustness.json'} and {args.out / 'robustness.md'} "
          f"in {report['seconds']} s")  # fmt: skip


def summary_table(report: dict) -> str:
    """One row per model: clean, subsets, without RGB, corrupted mean, cells below absent."""
    rows = []
    for name, entry in report["models"].items():
        kept = entry["kept"]
        robust = kept["robustness"]
        below = f"{robust['cells_worse_than_absent']} of {len(robust['cells'])}"
        rows.append([name, f"{kept['clean_all']:.1f}", f"{kept['mean_of_subsets']:.1f}",
                     f"{kept['mean_without_rgb']:.1f}", f"{robust['mean_corrupted_miou']:.1f}",
                     below])  # fmt: skip
    header = ["model", "all sensors", "mean of 15 subsets", "mean without RGB",
              "mean corrupted", "corrupted < absent"]  # fmt: skip
    return markdown_table(header, rows)


def ablation_table(report: dict) -> str:
    """Routers kept vs removed: clean mean of subsets and corrupted-sensor mean."""
    rows = []
    for name, entry in report["models"].items():
        if "removed" not in entry:
            continue
        for mode in ("kept", "removed"):
            scores = entry[mode]
            robust = scores["robustness"]
            rows.append([name, "routers " + mode, f"{scores['clean_all']:.1f}",
                         f"{scores['mean_of_subsets']:.1f}",
                         f"{robust['mean_corrupted_miou']:.1f}",
                         f"{robust['cells_worse_than_absent']}"])  # fmt: skip
    header = ["model", "fusion", "all sensors", "mean of 15 subsets", "mean corrupted",
              "cells below absent"]  # fmt: skip
    return markdown_table(header, rows)


def routing_table(report: dict) -> str:
    """Mean router weight per sensor: sun vs night (clean), and clean vs corrupted."""
    rows = []
    for name, entry in report["models"].items():
        kept = entry["kept"]
        modalities = kept["robustness"]["modalities"]
        for condition in ("sun", "night"):
            weights = kept["routing_per_condition"].get(condition)
            if weights:
                rows.append([name, f"clean, {condition}",
                             *(f"{w:.2f}" for w in weights)])  # fmt: skip
        by_sensor: dict[str, list[float]] = {}
        for cell in kept["robustness"]["cells"]:
            if cell["weight_corrupted"] is not None:
                by_sensor.setdefault(cell["modality"], []).append(cell["weight_corrupted"])
        rows.append([name, "that sensor corrupted (mean over its cells)",
                     *(f"{np.mean(by_sensor[m]):.2f}" if m in by_sensor else "-"
                       for m in modalities)])  # fmt: skip
    first = next(iter(report["models"].values()))["kept"]["robustness"]["modalities"]
    header = ["model", "frames", *(f"w {SHORT_NAMES.get(m, m)}" for m in first)]
    return markdown_table(header, rows)


if __name__ == "__main__":
    main()
