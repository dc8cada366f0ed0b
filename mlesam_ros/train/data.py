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

    ``variants`` (N, V, M, H, W, 3) optionally holds each sensor of each frame corrupted V
    times at the sensor level (``data.corruptions.corrupt_sensor`` before encoding, exactly
    as ``mlesam eval --corrupt`` does), with ``variant_kinds`` (N, V, M) the index into
    ``KINDS`` (-1: none). With a ``corruption`` config set, with probability
    ``corruption.rate`` one present sensor is swapped for one of its variants — or, for
    ``frozen``, for the same sensor of a frame a few frames earlier in the same drive
    (``frames_per_drive``) — before the augmentation; the sample gains ``corrupted`` (M,).
    """

    def __init__(
        self,
        images: np.ndarray,
        present: np.ndarray,
        labels: np.ndarray,
        conditions: Sequence[str],
        transform: Any = None,
        seed: int = 0,
        variants: np.ndarray | None = None,
        variant_kinds: np.ndarray | None = None,
    ) -> None:
        if not len(images) == len(present) == len(labels) == len(conditions):
            raise ValueError(
                "cached samples: images, present, labels and conditions differ in length"
            )
        if (variants is None) != (variant_kinds is None) or (
            variants is not None and variants.shape[:3] != variant_kinds.shape
        ):
            raise ValueError("cached samples: variants and variant_kinds do not match")
        self.images, self.present, self.labels = images, present, labels
        self.conditions = [str(c) for c in conditions]
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0
        self.variants, self.variant_kinds = variants, variant_kinds
        self.corruption: Any = None
        self.frames_per_drive = len(images)

    def __len__(self) -> int:
        """Return the number of samples."""
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Corrupt (when configured), augment and convert sample ``index``."""
        sample: Sample = {
            "images": self.images[index], "present": self.present[index],
            "labels": self.labels[index].astype(np.int64), "condition": self.conditions[index],
            "path": f"cache://{index}",
        }  # fmt: skip
        if self.corruption is not None and self.corruption.rate > 0:
            sample = self._corrupt(sample, index)
        if self.transform is not None:
            sample = self.transform(sample, np.random.default_rng([self.seed, self.epoch, index]))
        result = to_model_input(sample)
        if "corrupted" in sample:
            result["corrupted"] = sample["corrupted"]
        return result

    def _corrupt(self, sample: Sample, index: int) -> Sample:
        from mlesam_ros.data.corruptions import FROZEN_LAG, KINDS

        rng = np.random.default_rng([self.seed, self.epoch, index, 0xC0])
        corrupted = np.zeros(len(sample["images"]), dtype=bool)
        slot = _liar(sample["present"], self.corruption.rate, rng)
        if slot is None:
            return dict(sample, corrupted=corrupted)
        allowed = set(self.corruption.kinds or KINDS)
        choices = []
        if self.variants is not None:
            choices += [v for v, kind in enumerate(self.variant_kinds[index, :, slot])
                        if kind >= 0 and KINDS[kind] in allowed]  # fmt: skip
        if "frozen" in allowed:
            choices.append(-1)
        if not choices:
            return dict(sample, corrupted=corrupted)
        choice = choices[int(rng.integers(len(choices)))]
        if choice >= 0:
            replacement = self.variants[index, choice, slot]
        else:
            severities = self.corruption.severities
            lag = FROZEN_LAG[severities[int(rng.integers(len(severities)))] - 1]
            earlier = _same_drive(index, lag, self.frames_per_drive, len(self.images))
            if earlier == index or not self.present[earlier, slot]:
                return dict(sample, corrupted=corrupted)
            replacement = self.images[earlier, slot]
        images = sample["images"].copy()
        images[slot] = replacement
        corrupted[slot] = True
        return dict(sample, images=images, corrupted=corrupted)

    def save(self, path: Path) -> Path:
        """Write the cache atomically (uncompressed: loading speed beats disk here)."""
        partial = path.with_name(path.name + ".partial.npz")
        extra = {}
        if self.variants is not None:
            extra = {"variants": self.variants, "variant_kinds": self.variant_kinds}
        np.savez(partial, images=self.images, present=self.present, labels=self.labels,
                 conditions=np.array(self.conditions), **extra)  # fmt: skip
        partial.replace(path)
        return path

    @classmethod
    def load(cls, path: Path, transform: Any = None, seed: int = 0) -> CachedSamples:
        """Read a cache written by ``save``."""
        with np.load(path) as data:
            variants = data.get("variants")
            kinds = data.get("variant_kinds")
            return cls(data["images"], data["present"], data["labels"],
                       list(data["conditions"]), transform, seed, variants, kinds)  # fmt: skip


def _liar(present: np.ndarray, rate: float, rng: np.random.Generator) -> int | None:
    """Pick the sensor that lies in this sample: with probability ``rate``, one present one.

    One sensor at a time, as evaluation scores it: the rest of the sample stays clean, so
    the model keeps learning the clean full-sensor case too. A sample with a single sensor
    has nobody to outweigh the liar with and stays clean.
    """
    candidates = np.flatnonzero(present)
    if len(candidates) < 2 or rng.random() >= rate:
        return None
    return int(candidates[int(rng.integers(len(candidates)))])


def _same_drive(index: int, lag: int, frames_per_drive: int, count: int) -> int:
    """Find a frame ``lag`` frames away from ``index`` in its drive (earlier if possible)."""
    start = index - index % frames_per_drive
    end = min(start + frames_per_drive, count)
    if index - lag >= start:
        return index - lag
    if index + lag < end:
        return index + lag
    # A lag longer than the drive allows: the frame farthest away in it.
    return start if index - start >= end - 1 - index else end - 1


class CorruptedSamples:
    """Wrap a dataset folder's samples so present sensors lie at random (``CorruptionConfig``).

    DELIVER and MUSES ship each modality already encoded, so corruptions act on the images
    as the model receives them (``corrupt_encoded``), after the geometric augmentation, per
    modality with its own draw from ``(seed, epoch, index)`` (a resumed run sees the same
    lies). Each sample gains ``corrupted`` (M,) bool for the router term. ``frozen`` repeats
    the same modality of a sample a few frames earlier in the same sequence
    (``sequence_length`` frames per sequence; the next ones at a sequence's start).
    """

    def __init__(
        self, base: Any, modalities: Sequence[str], config: Any, seed: int = 0,
        sequence_length: int | None = None,
    ) -> None:  # fmt: skip
        self.base = base
        self.modalities = tuple(modalities)
        self.config = config
        self.seed = int(seed)
        self.sequence_length = sequence_length

    def __len__(self) -> int:
        """Return the base dataset's length."""
        return len(self.base)

    @property
    def epoch(self) -> int:
        """The base dataset's epoch (its augmentation and these draws depend on it)."""
        return self.base.epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.base.epoch = value

    def _earlier(self, index: int, lag: int) -> int:
        """Find a frame ``lag`` frames away in the same sequence (earlier if possible)."""
        return _same_drive(index, lag, self.sequence_length or len(self.base), len(self.base))

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Return the base sample, one present sensor corrupted with probability ``rate``."""
        from mlesam_ros.data.corruptions import FROZEN_LAG, corrupt_encoded, sample_corruption

        sample = self.base[index]
        rng = np.random.default_rng([self.seed, self.base.epoch, index, 0xC0])
        corrupted = np.zeros(len(self.modalities), dtype=bool)
        slot = _liar(sample["present"], self.config.rate, rng)
        if slot is None:
            return dict(sample, corrupted=corrupted)
        corruption = sample_corruption(self.modalities[slot], rng, self.config.kinds,
                                       self.config.severities)  # fmt: skip
        if corruption is None:
            return dict(sample, corrupted=corrupted)
        previous = None
        if corruption.kind == "frozen":
            other = self.base[self._earlier(index, FROZEN_LAG[corruption.severity - 1])]
            previous = _to_uint8(other["images"][slot])
        images = sample["images"].copy()
        image = corrupt_encoded(_to_uint8(images[slot]), corruption, rng, previous)
        images[slot] = image.transpose(2, 0, 1).astype(images.dtype)
        corrupted[slot] = True
        return dict(sample, images=images, corrupted=corrupted)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """(3, H, W) float 0..255 → (H, W, 3) uint8."""
    return np.clip(np.rint(image), 0, 255).astype(np.uint8).transpose(1, 2, 0)


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
    config: DataConfig, modalities: Sequence[str], size: tuple[int, int], run_dir: Path,
    variants: int = 0,
) -> Path:  # fmt: skip
    """Cache file for these frames: a hash of everything that changes the rendered pixels."""
    key = {
        "frames": config.frames, "frames_per_drive": config.frames_per_drive,
        "failure_rate": config.failure_rate, "seed": config.seed,
        "conditions": synthetic_conditions(config), "modalities": list(modalities),
        "size": list(size), "version": 1,
    }  # fmt: skip
    if variants:
        key.update(variants=variants, corruptions_version=1)
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    folder = Path(config.cache_dir) if config.cache_dir else run_dir
    return folder / f"synthetic_{digest}.npz"


def render_synthetic(
    config: DataConfig, modalities: Sequence[str], size: tuple[int, int], progress: bool = True,
    variants: int = 0,
) -> CachedSamples:  # fmt: skip
    """Render ``config.frames`` synthetic frames at ``size`` into a ``CachedSamples``.

    With ``variants`` > 0 each present sensor is also corrupted that many times at the sensor
    level (random kind and severity, ``frozen`` excepted: it comes from neighbouring frames)
    and encoded. ``config.render_workers`` > 1 renders in that many processes.
    """
    from tqdm import tqdm

    count = config.frames
    num_modalities = len(modalities)
    images = np.zeros((count, num_modalities, size[0], size[1], 3), dtype=np.uint8)
    present = np.zeros((count, num_modalities), dtype=bool)
    labels = np.zeros((count, size[0], size[1]), dtype=np.uint8)
    stored = np.zeros((count, variants, num_modalities, size[0], size[1], 3), np.uint8)
    kinds = np.full((count, variants, num_modalities), -1, np.int16)
    conditions = [""] * count
    workers = max(1, min(config.render_workers, count))
    chunk = max(1, min(32, -(-count // workers)))
    jobs = [(config, tuple(modalities), size, variants, start, min(start + chunk, count))
            for start in range(0, count, chunk)]  # fmt: skip
    bar = tqdm(total=count, desc="render synthetic", unit="frame", disable=not progress)
    if workers == 1:
        results = map(_render_frames, jobs)
        pool = None
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: the parent may hold torch's thread pools, which do not survive a fork.
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        results = pool.map(_render_frames, jobs)
    try:
        for start, part in results:
            stop = start + len(part["labels"])
            images[start:stop], present[start:stop] = part["images"], part["present"]
            labels[start:stop], conditions[start:stop] = part["labels"], part["conditions"]
            if variants:
                stored[start:stop], kinds[start:stop] = part["variants"], part["kinds"]
            bar.update(stop - start)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown()
    if not variants:
        return CachedSamples(images, present, labels, conditions)
    return CachedSamples(images, present, labels, conditions, variants=stored,
                         variant_kinds=kinds)  # fmt: skip


def _render_frames(job: tuple) -> tuple[int, dict[str, Any]]:
    """Render frames [start, stop) (in a worker process or inline) for ``render_synthetic``."""
    from mlesam_ros.data.corruptions import KINDS, sample_corruption
    from mlesam_ros.data.synthetic_dataset import SyntheticDataset, corrupt_frame, frame_to_images

    config, modalities, size, variants, start, stop = job
    source = SyntheticDataset(
        config.frames, modalities, size, synthetic_conditions(config), config.seed,
        config.frames_per_drive, config.failure_rate,
    )  # fmt: skip
    count, num_modalities = stop - start, len(modalities)
    part: dict[str, Any] = {
        "images": np.zeros((count, num_modalities, size[0], size[1], 3), np.uint8),
        "present": np.zeros((count, num_modalities), bool),
        "labels": np.zeros((count, size[0], size[1]), np.uint8),
        "conditions": [],
        "variants": np.zeros((count, variants, num_modalities, size[0], size[1], 3), np.uint8),
        "kinds": np.full((count, variants, num_modalities), -1, np.int16),
    }
    sensor_level = [kind for kind in KINDS if kind != "frozen"]
    for row, index in enumerate(range(start, stop)):
        frame = source.frame(index)
        part["images"][row], part["present"][row] = frame_to_images(frame, modalities)
        part["labels"][row] = frame.labels
        part["conditions"].append(frame.condition)
        rng = np.random.default_rng([config.seed, index, 0xC1])
        for variant in range(variants):
            for slot, modality in enumerate(modalities):
                if not part["present"][row, slot]:
                    continue
                corruption = sample_corruption(modality, rng, sensor_level)
                if corruption is None:
                    continue
                image, seen = frame_to_images(corrupt_frame(frame, corruption, rng), [modality])
                if seen[0]:
                    part["variants"][row, variant, slot] = image[0]
                    part["kinds"][row, variant, slot] = KINDS.index(corruption.kind)
    return start, part


def build_train_dataset(
    config: DataConfig,
    modalities: Sequence[str],
    size: tuple[int, int],
    run_dir: Path,
    *,
    render: bool = True,
    progress: bool = True,
    corruption: Any = None,
) -> Any:
    """Build the augmented training set; synthetic frames come from (or go to) the cache.

    With ``render`` False a missing synthetic cache is an error (other DDP ranks wait for
    rank 0 to render, then read its file). ``corruption`` (a ``CorruptionConfig``) wraps it
    in ``CorruptedSamples``.
    """
    dataset = _augmented_dataset(config, modalities, size, run_dir, render, progress,
                                 corruption)  # fmt: skip
    if corruption is None or corruption.rate <= 0:
        return dataset
    if isinstance(dataset, CachedSamples):
        dataset.corruption = corruption
        dataset.frames_per_drive = config.frames_per_drive
        return dataset
    return CorruptedSamples(dataset, modalities, corruption, config.seed)


def _augmented_dataset(
    config: DataConfig, modalities: Sequence[str], size: tuple[int, int], run_dir: Path,
    render: bool, progress: bool, corruption: Any,
) -> Any:  # fmt: skip
    transform = train_transforms(size, config.scale_range, modalities)
    if config.dataset == "synthetic":
        variants = corruption.variants if corruption is not None and corruption.rate > 0 else 0
        path = synthetic_cache_path(config, modalities, size, run_dir, variants)
        if path.is_file():
            return CachedSamples.load(path, transform, config.seed)
        if not render:
            raise FileNotFoundError(f"synthetic cache {path} was not written by rank 0")
        samples = render_synthetic(config, modalities, size, progress, variants)
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
