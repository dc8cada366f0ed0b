"""The training loop on a tiny synthetic set: learning, checkpoints, resume, config errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from mlesam_ros.model import load_checkpoint
from mlesam_ros.train.config import load_train_config, train_config_from_dict
from mlesam_ros.train.trainer import train

TINY = {
    "model": {"preset": "tiny", "modalities": ["rgb", "depth"], "num_classes": 25,
              "image_size": [32, 32], "lora_rank": 4, "train_encoder": True},
    "data": {"dataset": "synthetic", "frames": 8, "frames_per_drive": 4, "seed": 3,
             "conditions": ["sun", "night"], "scale_range": [1.0, 1.0]},
    "optim": {"lr": 3e-3, "batch_size": 2, "warmup_steps": 0, "poly_power": 0.0,
              "max_steps": 6},
    "loss": {"ohem_threshold": None},
    "modality_dropout": 0.3,
    "device": "cpu",
    "log_every": 1,
}


def _config(**optim):
    data = {**TINY, "optim": {**TINY["optim"], **optim}}
    return train_config_from_dict(data)


def _sample_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(2, 2, 3, 32, 32, generator=generator) * 255
    return images, torch.tensor([[True, True], [True, False]])


def test_loss_decreases_within_a_few_steps(tmp_path: Path) -> None:
    config = _config(max_steps=8, lr=2e-3)
    config.modality_dropout = 0.0
    result = train(config, tmp_path / "run", progress=False)
    losses = [row["loss"] for row in result.history]
    assert len(losses) == 8 and result.step == 8
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(1, 9))
    assert float(rows[0]["loss"]) == pytest.approx(losses[0], rel=1e-5)


def test_checkpoint_reload_gives_identical_logits(tmp_path: Path) -> None:
    config = _config(max_steps=2)
    config.normalization, config.modality_dropout_mode = "dataset", "subset"
    result = train(config, tmp_path / "run", progress=False)
    # Statistics measured on the training frames, not the fixed defaults, and reloaded.
    assert result.model.pixel_mean.flatten()[3:].tolist() != [127.5] * 3
    images, present = _sample_batch()
    with torch.no_grad():
        expected = result.model(images, present)["logits"]
    for name in ("model.pt", "last.pt"):
        model, extra = load_checkpoint(tmp_path / "run" / name)
        with torch.no_grad():
            torch.testing.assert_close(model(images, present)["logits"], expected,
                                       rtol=0, atol=0)
        assert extra["step"] == 2 and len(extra["class_names"]) == 25
        assert torch.equal(model.pixel_std, result.model.pixel_std)
    assert "optimizer" not in torch.load(tmp_path / "run" / "model.pt", weights_only=True)["extra"]
    sizes = {name: (tmp_path / "run" / name).stat().st_size for name in ("model.pt", "last.pt")}
    assert sizes["model.pt"] < sizes["last.pt"]  # no optimiser state in the shipped file


def test_resume_continues_from_the_saved_step_like_an_uninterrupted_run(tmp_path: Path) -> None:
    straight = train(_config(max_steps=6), tmp_path / "straight", progress=False)
    # Constant LR (no warm-up, poly power 0), so the 3-step run's schedule equals the 6's.
    train(_config(max_steps=3), tmp_path / "split", progress=False)
    assert torch.load(tmp_path / "split" / "last.pt", weights_only=True)["extra"]["step"] == 3
    resumed = train(_config(max_steps=6), tmp_path / "split", progress=False,
                    resume=tmp_path / "split" / "last.pt")
    assert resumed.step == 6 and [row["step"] for row in resumed.history] == [4, 5, 6]
    for (name, a), b in zip(straight.model.state_dict().items(),
                            resumed.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    steps = [int(r["step"]) for r in csv.DictReader((tmp_path / "split" / "metrics.csv").open())]
    assert steps == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="already at step 6"):
        train(_config(max_steps=6), tmp_path / "split", progress=False,
              resume=tmp_path / "split" / "last.pt")


def test_a_failed_start_leaves_no_run_folder(tmp_path: Path, capsys) -> None:
    """A missing SAM checkpoint or data root fails before step 1 and removes what it created."""
    from mlesam_ros.cli import main

    config = _config()
    config.sam_checkpoint = str(tmp_path / "sam_vit_b_01ec64.pth")
    with pytest.raises(FileNotFoundError, match=r"SAM checkpoint .* not found"):
        train(config, tmp_path / "runs" / "no_sam", progress=False)
    assert not (tmp_path / "runs" / "no_sam").exists()

    yaml_path = tmp_path / "deliver.yaml"
    yaml_path.write_text(f"data:\n  dataset: deliver\n  root: {tmp_path / 'DELIVER'}\n"
                         "model:\n  preset: tiny\n  train_encoder: true\n"
                         "device: cpu\n")  # fmt: skip
    out = tmp_path / "runs" / "deliver"
    assert main(["train", "--config", str(yaml_path), "--out", str(out), "--no-progress"]) == 2
    assert "dataset root" in capsys.readouterr().err and not out.exists()

    # A folder that existed before (an earlier run) keeps its files untouched.
    earlier = tmp_path / "runs" / "earlier"
    train(_config(max_steps=1), earlier, progress=False)
    before = {path.name: path.read_bytes() for path in earlier.iterdir()}
    with pytest.raises(FileNotFoundError, match="SAM checkpoint"):
        train(config, earlier, progress=False)
    assert {path.name: path.read_bytes() for path in earlier.iterdir()} == before


def test_config_errors_name_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    cases = {
        "optim:\n  lr: fast\n": "optim.lr: expected a number",
        "optim:\n  lrr: 0.1\n": "optim.lrr: unknown field",
        "model:\n  image_size: [30, 32]\n": "model.image_size",
        "data:\n  dataset: kitti\n": "data.dataset: unknown 'kitti'",
        "modality_dropout: 2\n": "modality_dropout: must be in [0, 1]",
        "optim:\n  batch_size: 2.5\n": "optim.batch_size: expected an integer",
        "data:\n  dataset: deliver\n": "data.root: dataset 'deliver' needs",
    }
    for text, message in cases.items():
        path.write_text(text)
        with pytest.raises(ValueError, match=r"bad\.yaml") as error:
            load_train_config(path)
        assert message in str(error.value), (text, str(error.value))
    with pytest.raises(FileNotFoundError, match=r"missing\.yaml"):
        load_train_config(tmp_path / "missing.yaml")
    path.write_text("optim:\n  lr: 1.0e-3\n")
    config = load_train_config(path, ["optim.max_steps=7", "model.modalities=[rgb, lidar]"])
    assert config.optim.max_steps == 7 and config.model.modalities == ("rgb", "lidar")


def test_shipped_configs_load() -> None:
    root = Path(__file__).resolve().parents[1] / "config" / "train"
    with_dropout = load_train_config(root / "demo_tiny.yaml")
    without = load_train_config(root / "demo_tiny_no_dropout.yaml")
    assert with_dropout.modality_dropout > 0 and without.modality_dropout == 0
    assert with_dropout.model.train_encoder and with_dropout.model.num_classes == 25
    assert with_dropout.modality_dropout_mode == "subset"  # all sensor subsets trained
    assert with_dropout.normalization == "dataset"
    with_dropout.modality_dropout = without.modality_dropout = 0.0
    with_dropout.modality_dropout_mode = without.modality_dropout_mode = "independent"
    with_dropout.description = without.description = ""
    assert with_dropout == without  # the comparison differs in dropout only
    deliver = load_train_config(root / "deliver_vit_b.yaml")
    assert deliver.model.router == "spatial" and deliver.modality_dropout_mode == "subset"
    assert deliver.corruption.rate > 0 and with_dropout.corruption.rate > 0
    assert deliver.gradient_checkpointing and deliver.normalization == "dataset"


def test_modality_statistics_use_present_images_only() -> None:
    from mlesam_ros.train.trainer import modality_statistics

    images = torch.zeros(3, 2, 3, 4, 4)
    images[:, 0] = torch.tensor([10.0, 20.0, 30.0])[:, None, None]
    images[0, 1], images[1, 1] = 100.0, 200.0
    images[2, 1] = float("nan")  # absent: must not count
    samples = [{"images": images[i], "present": torch.tensor([True, i < 2])} for i in range(3)]
    mean, std = modality_statistics(samples, 2)
    torch.testing.assert_close(mean, torch.tensor([[10.0, 20.0, 30.0], [150.0] * 3]))
    torch.testing.assert_close(std, torch.tensor([[1.0] * 3, [50.0] * 3]))  # floored at 1


def test_no_weight_decay_on_embeddings_norms_and_biases() -> None:
    from mlesam_ros.model import build_mlesam
    from mlesam_ros.train.optim import build_optimizer

    config = _config()
    model = build_mlesam(config.model)
    optimizer = build_optimizer(model, config.optim)
    decayed = {id(p) for p in optimizer.param_groups[0]["params"]}
    assert optimizer.param_groups[1]["weight_decay"] == 0.0
    names = {name: id(p) for name, p in model.named_parameters()}
    for name in ("backbone.encoder.pos_embed", "backbone.encoder.blocks.0.attn.rel_pos_h",
                 "mask_decoder.mask_tokens.weight", "mask_decoder.iou_token.weight",
                 "mask_decoder.prompt_tokens", "backbone.encoder.blocks.0.norm1.weight"):
        assert names[name] not in decayed, name
    for name in ("backbone.encoder.blocks.0.attn.qkv.lora_a_q",
                 "backbone.encoder.blocks.0.mlp.lin1.weight"):
        assert names[name] in decayed, name
