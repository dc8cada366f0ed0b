"""Datasets for training and evaluation, built from a ``DataConfig``.

The synthetic world costs ~0.1 s of CPU per rendered frame, so training renders its frames
once into an ``.npz`` cache (uint8, keyed by everything that changes the pixels) and only
the cheap augmentation (scale, crop, flip) runs per epoch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlesam_ros.data.synth.render import CONDITIONS
from mlesam_ros.data.transforms import Sample, eval_transforms, to_model_input, train_transforms
from mlesam_ros.train.config import DataConfig


class CachedSamples:
    """Map-style dataset over pre-rendered uint8 samples, augmented per (seed, epoch, index).

    Holds ``images`` (N, M, H, W, 3) uint8, ``present`` (N, M) bool, ``labels`` (N, H, W)
    uint8 (255 = ignore) and one condition name per sample; ``__getitem__`` returns the
    model's layout (see ``mlesam_ros.data.transforms.to_model_input``).
    """

    def __init__(
        self,
        images: np.ndarray,
        present: np.ndarray,
        labels: np.ndarray,
        conditions: Sequence[str],
        transform: Any = None,
        seed: int = 0,
    ) -> None:
        if not len(images) == len(present) == len(labels) == len(conditions):
            raise ValueError(
                "cached samples: images, present, labels and conditions differ in length"
            )
        self.images, self.present, self.labels = images, present, labels
        self.conditions = [str(c) for c in conditions]
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        """Return the number of samples."""
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Augment and convert sample ``index``."""
        sample: Sample = {
            "images": self.images[index], "present": self.present[index],
            "labels": self.labels[index].astype(np.int64), "condition": self.conditions[index],
            "path": f"cache://{index}",
        }  # fmt: skip
        if self.transform is not None:
            sample = self.transform(sample, np.random.default_rng([self.seed, self.epoch, index]))
        return to_model_input(sample)

    def save(self, path: Path) -> Path:
        """Write the cache atomically (uncompressed: loading speed beats disk here)."""
        partial = path.with_name(path.name + ".partial.npz")
        np.savez(partial, images=self.images, present=self.present, labels=self.labels,
                 conditions=np.array(self.conditions))  # fmt: skip
        partial.replace(path)
        return path

    @classmethod
    def load(cls, path: Path, transform: Any = None, seed: int = 0) -> CachedSamples:
        """Read a cache written by ``save``."""
        with np.load(path) as data:
            return cls(data["images"], data["present"], data["labels"],
                       list(data["conditions"]), transform, seed)  # fmt: skip


def synthetic_conditions(config: DataConfig) -> tuple[str, ...]:
    """Return the configured synthetic conditions (all by default), validated."""
    conditions = tuple(config.conditions or CONDITIONS)
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        raise ValueError(
            f"data.conditions: unknown {unknown}; choose from {', '.join(CONDITIONS)}"
        )
    return conditions


def synthetic_cache_path(
    config: DataConfig, modalities: Sequence[str], size: tuple[int, int], run_dir: Path
) -> Path:
    """Cache file for these frames: a hash of everything that changes the rendered pixels."""
    key = {
        "frames": config.frames, "frames_per_drive": config.frames_per_drive,
        "failure_rate": config.failure_rate, "seed": config.seed,
        "conditions": synthetic_conditions(config), "modalities": list(modalities),
        "size": list(size), "version": 1,
    }  # fmt: skip
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    folder = Path(config.cache_dir) if config.cache_dir else run_dir
    return folder / f"synthetic_{digest}.npz"


def render_synthetic(
    config: DataConfig, modalities: Sequence[str], size: tuple[int, int], progress: bool = True
) -> CachedSamples:
    """Render ``config.frames`` synthetic frames at ``size`` into a ``CachedSamples``."""
    from tqdm import tqdm

    from mlesam_ros.data.synthetic_dataset import SyntheticDataset, frame_to_images

    source = SyntheticDataset(
        config.frames, modalities, size, synthetic_conditions(config), config.seed,
        config.frames_per_drive, config.failure_rate,
    )  # fmt: skip
    count, num_modalities = len(source), len(source.modalities)
    images = np.zeros((count, num_modalities, size[0], size[1], 3), dtype=np.uint8)
    present = np.zeros((count, num_modalities), dtype=bool)
    labels = np.zeros((count, size[0], size[1]), dtype=np.uint8)
    conditions = []
    for index in tqdm(range(count), desc="render synthetic", unit="frame", disable=not progress):
        frame = source.frame(index)
        images[index], present[index] = frame_to_images(frame, source.modalities)
        labels[index] = frame.labels
        conditions.append(frame.condition)
    return CachedSamples(images, present, labels, conditions)


def build_train_dataset(
    config: DataConfig,
    modalities: Sequence[str],
    size: tuple[int, int],
    run_dir: Path,
    *,
    render: bool = True,
    progress: bool = True,
) -> Any:
    """Build the augmented training set; synthetic frames come from (or go to) the cache.

    With ``render`` False a missing synthetic cache is an error (other DDP ranks wait for
    rank 0 to render, then read its file).
    """
    transform = train_transforms(size, config.scale_range, modalities)
    if config.dataset == "synthetic":
        path = synthetic_cache_path(config, modalities, size, run_dir)
        if path.is_file():
            return CachedSamples.load(path, transform, config.seed)
        if not render:
            raise FileNotFoundError(f"synthetic cache {path} was not written by rank 0")
        samples = render_synthetic(config, modalities, size, progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        samples.save(path)
        samples.transform, samples.seed = transform, config.seed
        return samples
    return folder_dataset(config.dataset, config.root, config.split, modalities,
                          config.conditions, transform, config.seed)  # fmt: skip


def folder_dataset(
    dataset: str,
    root: str | Path,
    split: str,
    modalities: Sequence[str],
    conditions: Sequence[str] | None,
    transform: Any,
    seed: int = 0,
) -> Any:
    """Open a DELIVER or MUSES folder (``conditions`` filters the weathers)."""
    from mlesam_ros.data.loaders import DeliverDataset, MusesDataset

    if dataset == "deliver":
        return DeliverDataset(root, split, modalities, conditions, transform, seed)
    if dataset == "muses":
        return MusesDataset(root, split, modalities, conditions, None, transform, seed)
    raise ValueError(f"dataset: {dataset!r} is not a folder dataset; use deliver or muses")


def build_eval_dataset(
    data: str,
    dataset: str | None,
    modalities: Sequence[str],
    size: tuple[int, int],
    *,
    split: str = "val",
    seed: int = 1000,
    frames: int = 250,
    frames_per_drive: int = 10,
    failure_rate: float = 0.0,
    conditions: Sequence[str] | None = None,
) -> Any:
    """Held-out evaluation data: ``data`` is ``synthetic`` or a DELIVER/MUSES folder.

    Synthetic frames render directly at the model ``size`` (every condition by default,
    cycling per street) from ``seed``, which should be one training never used.
    """
    if data == "synthetic" or dataset == "synthetic":
        from mlesam_ros.data.synthetic_dataset import SyntheticDataset

        chosen = synthetic_conditions(DataConfig(conditions=tuple(conditions or CONDITIONS)))
        return SyntheticDataset(frames, modalities, size, chosen, seed, frames_per_drive,
                                failure_rate)  # fmt: skip
    if not Path(data).is_dir():
        raise FileNotFoundError(f"--data: {data} is neither 'synthetic' nor a dataset folder")
    return folder_dataset(dataset or "deliver", data, split, modalities, conditions,
                          eval_transforms(size, modalities), seed)  # fmt: skip


def iterate_batches(dataset: Any, batch_size: int) -> Iterator[dict[str, Any]]:
    """Stack consecutive samples into numpy batches (no torch needed)."""
    for start in range(0, len(dataset), batch_size):
        samples = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        yield {
            "images": np.stack([s["images"] for s in samples]),
            "present": np.stack([s["present"] for s in samples]),
            "labels": np.stack([s["labels"] for s in samples]),
            "condition": [s.get("condition", "all") for s in samples],
        }
