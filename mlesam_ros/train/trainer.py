"""The training loop: data → model (+ modality dropout) → loss → AdamW, with DDP, AMP, resume.

One function, ``train``, runs a whole job in the calling process; under torchrun each rank
calls it and ``DistributedDataParallel`` keeps the replicas identical. Rank 0 writes the run
folder: ``config.yaml``, ``metrics.csv`` (one row per logged step), ``last.pt`` (weights +
optimiser/scheduler/step, for ``--resume``) and ``model.pt`` (weights and config only: the
small file to evaluate, export or ship). A run that fails before its first step (a missing
SAM checkpoint, a wrong data root) removes the folder it created and leaves nothing behind.
"""

from __future__ import annotations

import csv
import itertools
import math
import shutil
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler

from mlesam_ros.model import MLESAMLoss, build_mlesam, load_checkpoint, modality_dropout
from mlesam_ros.model import save_checkpoint as save_model_checkpoint
from mlesam_ros.train.config import TrainConfig
from mlesam_ros.train.data import build_train_dataset
from mlesam_ros.train.distributed import DistributedContext, cleanup_distributed, init_distributed
from mlesam_ros.train.optim import build_optimizer, build_scheduler

CSV_FIELDS = ("step", "epoch", "loss", "loss_logits", "loss_mask_logits", "loss_aux_logits",
              "loss_route", "lr", "samples_per_s", "elapsed_s")  # fmt: skip


@dataclass
class TrainResult:
    """What a finished run leaves behind (on every rank; files only on rank 0)."""

    model: torch.nn.Module
    step: int
    epoch: int
    run_dir: Path
    final_loss: float
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def model_path(self) -> Path:
        """The weights-only checkpoint."""
        return self.run_dir / "model.pt"

    @property
    def last_path(self) -> Path:
        """The resumable checkpoint."""
        return self.run_dir / "last.pt"


def class_names_for(num_classes: int) -> list[str]:
    """DELIVER names for 25 classes, Cityscapes for 19, else numbers (stored in checkpoints)."""
    from mlesam_ros.data.classes import CITYSCAPES_CLASSES, DELIVER_CLASSES

    for names in (DELIVER_CLASSES, CITYSCAPES_CLASSES):
        if len(names) == num_classes:
            return list(names)
    return [f"class_{i}" for i in range(num_classes)]


def train(
    config: TrainConfig,
    run_dir: str | Path,
    resume: str | Path | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``config`` and write the run folder; returns the trained (unwrapped) model."""
    context = init_distributed(config.device)
    folder = _RunFolder(Path(run_dir), owner=context.is_main)
    try:
        return _train(config, folder, resume, progress, context)
    except BaseException:
        folder.discard_unless_started()
        raise
    finally:
        cleanup_distributed()


class _RunFolder:
    """The run folder, removed again if this run created it and fails before its first step.

    Setting up checks the inputs (SAM checkpoint, data root, config against the data) only
    as it meets them, after the folder exists; a failed start must not leave a folder that
    looks like a run. Once training has started the folder holds the run's log and stays.
    """

    def __init__(self, path: Path, owner: bool) -> None:
        self.path = path
        self.created = owner and not path.exists()
        self.started = False

    def discard_unless_started(self) -> None:
        if self.created and not self.started:
            shutil.rmtree(self.path, ignore_errors=True)


def _train(
    config: TrainConfig,
    folder: _RunFolder,
    resume: str | Path | None,
    progress: bool,
    context: DistributedContext,
) -> TrainResult:
    run_dir = folder.path
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    device = context.device
    use_amp = config.amp and device.type == "cuda"
    amp_dtype = autocast_dtype(device) if use_amp else None
    if context.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)  # the synthetic cache may go here

    if context.is_main and not config.model.train_encoder and not config.sam_checkpoint:
        warnings.warn(
            "sam_checkpoint is not set and model.train_encoder is false: the encoder stays "
            "frozen at random weights (fine for tests, useless for real training); set "
            "sam_checkpoint: /path/to/sam_vit_b_01ec64.pth or model.train_encoder: true",
            stacklevel=2,
        )
    # Same seed on every rank: identical initial weights (DDP also broadcasts rank 0's).
    torch.manual_seed(config.seed)
    model = build_mlesam(config.model, config.sam_checkpoint).to(device)
    model.backbone.gradient_checkpointing = config.gradient_checkpointing
    optimizer = build_optimizer(model, config.optim)

    size = tuple(config.model.image_size)
    if context.is_main:
        dataset = build_train_dataset(config.data, config.model.modalities, size, run_dir,
                                      progress=progress, corruption=config.corruption)  # fmt: skip
    context.barrier()
    if not context.is_main:
        dataset = build_train_dataset(config.data, config.model.modalities, size, run_dir,
                                      render=False, progress=False,
                                      corruption=config.corruption)  # fmt: skip
    # DistributedSampler also in one process: its order depends only on (seed, epoch), which
    # makes a resumed run see exactly the batches an uninterrupted one would.
    sampler = DistributedSampler(dataset, context.world_size, context.rank, shuffle=True,
                                 seed=config.seed, drop_last=True)  # fmt: skip
    loader = DataLoader(dataset, batch_size=config.optim.batch_size, sampler=sampler,
                        num_workers=config.num_workers, drop_last=True,
                        pin_memory=device.type == "cuda")  # fmt: skip
    if config.normalization == "dataset" and resume is None:
        # Deterministic from the data, so every DDP rank computes the same statistics.
        # Statistics of the sensors as they are, not as the corruptions make them.
        clean = getattr(dataset, "base", dataset)
        model.set_normalization(*modality_statistics(clean, config.model.num_modalities))
    accum = config.optim.grad_accum
    steps_per_epoch = len(loader) // accum
    if steps_per_epoch == 0:
        raise ValueError(
            f"optim.batch_size: {len(dataset)} samples over {context.world_size} process(es) "
            f"do not fill one step of batch {config.optim.batch_size} x grad_accum {accum}"
        )
    total_steps = config.optim.max_steps or config.optim.epochs * steps_per_epoch
    scheduler = build_scheduler(optimizer, config.optim, total_steps)
    # bfloat16 has float32's range: no loss scaling (and no silently skipped steps) needed.
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    step = 0
    if resume is not None:
        step = _restore(resume, model, optimizer, scheduler, scaler, config)
        if step >= total_steps:
            raise ValueError(
                f"--resume: {resume} is already at step {step} of {total_steps}; raise "
                "--max-steps/--epochs to train longer"
            )
    wrapped: torch.nn.Module = model
    if context.is_distributed:
        wrapped = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    criterion = MLESAMLoss(
        mask_weight=config.loss.mask_weight, aux_weight=config.loss.aux_weight,
        ohem_threshold=config.loss.ohem_threshold, ohem_min_kept=config.loss.ohem_min_kept,
    )  # fmt: skip

    if context.is_main:
        # Written once the inputs have been read: a failed start keeps an earlier run's file.
        _write_yaml(run_dir / "config.yaml", config.to_dict())
    folder.started = True
    log = _CsvLog(run_dir / "metrics.csv", append=resume is not None) if context.is_main else None
    bar = _progress_bar(total_steps, step, progress and context.is_main)
    history: list[dict[str, float]] = []
    samples_per_step = config.optim.batch_size * accum * context.world_size
    started = time.perf_counter()
    window_start, window_steps = started, 0
    last_loss = math.nan
    epoch = step // steps_per_epoch
    wrapped.train()
    while step < total_steps:
        sampler.set_epoch(epoch)
        dataset.epoch = epoch  # augmentation draws depend on (seed, epoch, index)
        skip = (step - epoch * steps_per_epoch) * accum  # resumed mid-epoch
        batches = itertools.islice(iter(loader), skip, steps_per_epoch * accum)
        for micro, batch in enumerate(batches):
            final_micro = (micro + 1) % accum == 0
            terms = _forward_backward(wrapped, criterion, batch, config, context, step,
                                      micro % accum, scaler, amp_dtype, accum,
                                      sync=final_micro)  # fmt: skip
            if not final_micro:
                continue
            if config.optim.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            step += 1
            window_steps += 1
            last_loss = terms["loss"]
            if bar is not None:
                bar.update(1)
                rate = bar.format_dict.get("rate") or 0.0
                bar.set_postfix(loss=f"{last_loss:.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}",
                                img_s=f"{rate * samples_per_step:.1f}")  # fmt: skip
            if step % config.log_every == 0 or step == total_steps:
                now = time.perf_counter()
                throughput = window_steps * samples_per_step / max(now - window_start, 1e-9)
                row = {"step": step, "epoch": epoch, **terms, "lr": scheduler.get_last_lr()[0],
                       "samples_per_s": throughput, "elapsed_s": now - started}  # fmt: skip
                window_start, window_steps = now, 0
                history.append(row)
                if log is not None:
                    log.write(row)
            if context.is_main and config.checkpoint_every and step % config.checkpoint_every == 0:
                _save_last(run_dir, model, optimizer, scheduler, scaler, step, epoch, config)
            if step >= total_steps:
                break
        else:
            epoch += 1
            continue
        if step % steps_per_epoch == 0:
            epoch += 1
    if bar is not None:
        bar.close()
    if context.is_main:
        _save_last(run_dir, model, optimizer, scheduler, scaler, step, epoch, config)
        save_model_checkpoint(run_dir / "model.pt", model, step=step, epoch=epoch,
                              train_config=config.to_dict(), final_loss=last_loss,
                              class_names=class_names_for(config.model.num_classes))  # fmt: skip
    context.barrier()
    model.eval()
    return TrainResult(model, step, epoch, run_dir, last_loss, history)


def _forward_backward(
    wrapped: torch.nn.Module,
    criterion: MLESAMLoss,
    batch: dict[str, Any],
    config: TrainConfig,
    context: DistributedContext,
    step: int,
    micro: int,
    scaler: torch.amp.GradScaler,
    amp_dtype: torch.dtype | None,
    accum: int,
    sync: bool,
) -> dict[str, float]:
    """One micro-batch: presence dropout, forward under autocast, scaled backward."""
    device = context.device
    images = batch["images"].to(device, non_blocking=True)
    labels = batch["labels"].to(device, non_blocking=True)
    present = batch["present"].to(device)
    # Reseed per (rank, step, micro-batch): the model's dropout and the modality dropout draw
    # the same numbers whether or not the run was interrupted and resumed.
    torch.manual_seed(config.seed * 1_000_003 + context.rank * 10_007 + step * 61 + micro)
    if config.modality_dropout > 0:
        present = modality_dropout(present, config.modality_dropout,
                                   mode=config.modality_dropout_mode)  # fmt: skip
    # Skip DDP's gradient all-reduce on all but the last micro-batch of an accumulated step.
    no_sync = getattr(wrapped, "no_sync", None)
    sync_context = no_sync() if (no_sync is not None and not sync) else nullcontext()
    with sync_context:
        with torch.autocast(device.type, dtype=amp_dtype or torch.float16,
                            enabled=amp_dtype is not None):  # fmt: skip
            outputs = wrapped(images, present)
            losses = criterion(outputs, labels)
            if config.corruption.route_weight > 0 and "corrupted" in batch:
                corrupted = batch["corrupted"].to(device) & present
                route = corrupted_route_loss(outputs["routing_weights"], corrupted, present)
                losses["loss_route"] = route
                losses["loss"] = losses["loss"] + config.corruption.route_weight * route
        scaler.scale(losses["loss"] / accum).backward()
    return {name: float(value.detach()) for name, value in losses.items()}


def corrupted_route_loss(
    weights: torch.Tensor, corrupted: torch.Tensor, present: torch.Tensor
) -> torch.Tensor:
    """Mean routing weight (B, levels, M) given to corrupted sensors, where there was a choice.

    Samples with a single present sensor are left out: their weight is 1 whatever the router
    does. 0 when no sample of the batch has a corrupted sensor beside another one.
    """
    choice = present.sum(dim=1, keepdim=True) > 1
    mask = (corrupted & choice).unsqueeze(1).expand_as(weights)
    total = torch.where(mask, weights.float(), torch.zeros_like(weights, dtype=torch.float32))
    return total.sum() / mask.sum().clamp_min(1)


def autocast_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 where the GPU has it natively (Ampere and newer), else float16."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.bfloat16
    return torch.float16


def modality_statistics(
    dataset: Any, num_modalities: int, max_samples: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-modality, per-channel mean and std (M, 3) over present images of ``dataset``.

    Up to ``max_samples`` evenly spaced samples (augmented as in training); a modality never
    present keeps mean 127.5 / std 64. The std is floored at 1 so constant images stay finite.
    """
    total = torch.zeros(num_modalities, 3, dtype=torch.float64)
    squares = torch.zeros_like(total)
    pixels = torch.zeros(num_modalities, dtype=torch.float64)
    count = len(dataset)
    for index in sorted({int(i) for i in torch.linspace(0, count - 1, min(count, max_samples))}):
        sample = dataset[index]
        images = torch.as_tensor(sample["images"], dtype=torch.float64)  # (M, 3, H, W)
        present = torch.as_tensor(sample["present"], dtype=torch.bool)
        for modality in torch.nonzero(present).flatten().tolist():
            image = images[modality]
            total[modality] += image.sum(dim=(1, 2))
            squares[modality] += (image**2).sum(dim=(1, 2))
            pixels[modality] += image[0].numel()
    seen = pixels > 0
    mean = torch.full_like(total, 127.5)
    std = torch.full_like(total, 64.0)
    mean[seen] = total[seen] / pixels[seen, None]
    variance = squares[seen] / pixels[seen, None] - mean[seen] ** 2
    std[seen] = variance.clamp_min(0).sqrt().clamp_min(1.0)
    return mean.float(), std.float()


def _save_last(run_dir, model, optimizer, scheduler, scaler, step, epoch, config) -> None:
    save_model_checkpoint(
        run_dir / "last.pt", model, step=step, epoch=epoch, train_config=config.to_dict(),
        optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
        scaler=scaler.state_dict(), class_names=class_names_for(config.model.num_classes),
    )  # fmt: skip


def _restore(resume, model, optimizer, scheduler, scaler, config: TrainConfig) -> int:
    """Load weights and optimiser/scheduler state from ``last.pt``; returns its step."""
    restored, extra = load_checkpoint(resume, config.sam_checkpoint)
    if restored.config.to_dict() != config.model.to_dict():
        raise ValueError(
            f"--resume: {resume} was trained with a different model config; resume with the "
            "config of that run (its config.yaml)"
        )
    if "optimizer" not in extra or "step" not in extra:
        raise ValueError(
            f"--resume: {resume} has no optimiser state (a weights-only model.pt?); resume "
            "from the run's last.pt"
        )
    model.load_state_dict(restored.state_dict())
    optimizer.load_state_dict(extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    if extra.get("scaler"):
        scaler.load_state_dict(extra["scaler"])
    return int(extra["step"])


class _CsvLog:
    """Scalar log: one CSV row per logged step, flushed so a crash keeps what was written."""

    def __init__(self, path: Path, append: bool) -> None:
        exists = append and path.is_file()
        self.file = path.open("a" if exists else "w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=CSV_FIELDS, extrasaction="ignore")
        if not exists:
            self.writer.writeheader()

    def write(self, row: dict[str, float]) -> None:
        self.writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v)
                              for k, v in row.items()})  # fmt: skip
        self.file.flush()


def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", desc="train", dynamic_ncols=True)


def _write_yaml(path: Path, data: dict[str, Any]) -> None:
    import yaml

    path.write_text(yaml.safe_dump(data, sort_keys=False))
