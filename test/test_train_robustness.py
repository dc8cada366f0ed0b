"""Training with sensors that lie, and the robustness evaluation (clean / corrupted / absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mlesam_ros.cli import main
from mlesam_ros.data.corruptions import KINDS, Corruption
from mlesam_ros.data.synthetic_dataset import SyntheticDataset
from mlesam_ros.model import MLESAMConfig, build_mlesam
from mlesam_ros.train.config import CorruptionConfig, DataConfig, train_config_from_dict
from mlesam_ros.train.data import render_synthetic
from mlesam_ros.train.evaluate import torch_predictor
from mlesam_ros.train.robustness import evaluate_robustness, robustness_table
from mlesam_ros.train.trainer import corrupted_route_loss, train

MODALITIES = ("rgb", "depth", "thermal", "lidar")
SIZE = (32, 48)


@pytest.fixture(scope="module")
def cache() -> object:
    config = DataConfig(frames=6, frames_per_drive=3, seed=5, conditions=("sun",))
    return render_synthetic(config, MODALITIES, SIZE, progress=False, variants=2)


def test_variants_are_sensor_level_corruptions_of_every_present_sensor(cache) -> None:
    assert cache.variants.shape == (6, 2, 4, *SIZE, 3)
    kinds = cache.variant_kinds
    assert (kinds[cache.present[:, None, :].repeat(2, 1)] >= 0).all()
    assert KINDS.index("frozen") not in kinds  # frozen comes from neighbouring frames
    changed = np.any(cache.variants != cache.images[:, None], axis=(3, 4, 5))
    assert changed[kinds >= 0].mean() > 0.8


def test_render_workers_give_the_same_cache(cache) -> None:
    config = DataConfig(frames=6, frames_per_drive=3, seed=5, conditions=("sun",),
                        render_workers=2)  # fmt: skip
    parallel = render_synthetic(config, MODALITIES, SIZE, progress=False, variants=2)
    assert np.array_equal(parallel.images, cache.images)
    assert np.array_equal(parallel.variants, cache.variants)
    assert np.array_equal(parallel.variant_kinds, cache.variant_kinds)


def test_cached_samples_swap_one_sensor_for_a_variant_or_a_neighbour(cache) -> None:
    cache.corruption = CorruptionConfig(rate=1.0, variants=2)
    cache.frames_per_drive = 3
    try:
        for index in range(6):
            sample = cache[index]
            # One liar per sample, the others untouched.
            assert sample["corrupted"].sum() == 1
            for slot in np.flatnonzero(~sample["corrupted"]):
                untouched = sample["images"][slot].transpose(1, 2, 0).astype(np.uint8)
                assert np.array_equal(untouched, cache.images[index, slot])
            for slot in np.flatnonzero(sample["corrupted"]):
                image = sample["images"][slot].transpose(1, 2, 0).astype(np.uint8)
                drive = range(index - index % 3, index - index % 3 + 3)
                candidates = [*cache.variants[index, :, slot],
                              *(cache.images[other, slot] for other in drive if other != index)]
                assert any(np.array_equal(image, c) for c in candidates), (index, slot)
        cache.corruption = CorruptionConfig(rate=0.0)
        assert "corrupted" not in cache[0]
        cache.corruption = CorruptionConfig(rate=1.0, kinds=("frozen",))
        sample = cache[4]  # frame 1 of drive 2: frozen shows frame 0 or 2 of that drive
        (slot,) = np.flatnonzero(sample["corrupted"])
        image = sample["images"][slot].transpose(1, 2, 0).astype(np.uint8)
        assert any(np.array_equal(image, cache.images[other, slot]) for other in (3, 5))
        liars = []
        cache.corruption = CorruptionConfig(rate=0.5, variants=2)
        for epoch in range(40):
            cache.epoch = epoch
            liars.append(cache[1]["corrupted"].any())
        assert 0.3 < np.mean(liars) < 0.7
    finally:
        cache.corruption = None
        cache.epoch = 0
    assert "corrupted" not in cache[0]


def test_route_loss_is_the_mean_weight_on_corrupted_sensors_with_a_choice() -> None:
    weights = torch.tensor([[[0.1, 0.6, 0.3, 0.0]], [[1.0, 0.0, 0.0, 0.0]]]).repeat(1, 2, 1)
    present = torch.tensor([[True, True, True, False], [True, False, False, False]])
    corrupted = torch.tensor([[False, True, True, False], [True, False, False, False]])
    # Sample 1 has a single sensor: its weight is 1 whatever the router does, so it is left out.
    assert float(corrupted_route_loss(weights, corrupted, present)) == pytest.approx(0.45)
    assert float(corrupted_route_loss(weights, torch.zeros_like(corrupted), present)) == 0.0


def test_training_with_corruptions_logs_the_route_term(tmp_path: Path) -> None:
    config = train_config_from_dict({
        "model": {"preset": "tiny", "modalities": ["rgb", "depth"], "num_classes": 25,
                  "image_size": [32, 32], "lora_rank": 4, "train_encoder": True},
        "data": {"frames": 4, "frames_per_drive": 2, "seed": 3, "conditions": ["sun"],
                 "scale_range": [1.0, 1.0]},
        "optim": {"batch_size": 2, "max_steps": 3, "warmup_steps": 0},
        "corruption": {"rate": 0.8, "variants": 1, "route_weight": 0.5},
        "device": "cpu", "log_every": 1,
    })  # fmt: skip
    result = train(config, tmp_path / "run", progress=False)
    assert result.step == 3
    assert all(np.isfinite(row["loss_route"]) for row in result.history)
    assert any(row["loss_route"] > 0 for row in result.history)


def test_corruption_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"corruption\.kinds: unknown glare"):
        train_config_from_dict({"corruption": {"kinds": ["glare"]}})
    with pytest.raises(ValueError, match=r"corruption.rate: must be in \[0, 1\]"):
        train_config_from_dict({"corruption": {"rate": 2}})


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    config = MLESAMConfig(preset="tiny", modalities=MODALITIES, num_classes=25, image_size=SIZE,
                          lora_rank=4, train_encoder=True)  # fmt: skip
    model = build_mlesam(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    return model


def test_robustness_cells_equal_running_the_model_on_corrupted_and_absent_input(model) -> None:
    dataset = SyntheticDataset(3, MODALITIES, SIZE, frames_per_drive=3, seed=2)
    dataset.keep_frames = True
    cells = [Corruption("lidar", "noise", 4), Corruption("depth", "frozen", 1)]
    result = evaluate_robustness(torch_predictor(model), dataset, MODALITIES,
                                 [str(i) for i in range(25)], cells, batch_size=2,
                                 progress=False)  # fmt: skip
    predictor = torch_predictor(model)
    for cell in result.cells:
        slot = MODALITIES.index(cell.corruption.modality)
        dataset.corruptions = (cell.corruption,)
        corrupted = [dataset[i] for i in range(3)]
        dataset.corruptions = ()
        images = np.stack([s["images"] for s in corrupted])
        present = np.stack([s["present"] for s in corrupted])
        labels = np.stack([s["labels"] for s in corrupted])
        direct = predictor(images, present)
        absent = present.copy()
        absent[:, slot] = False
        direct_absent = predictor(np.where(absent[:, :, None, None, None], images, 0), absent)
        from mlesam_ros.train.metrics import ConfusionMatrix

        expected, expected_absent = ConfusionMatrix(25), ConfusionMatrix(25)
        expected.update(direct, labels)
        expected_absent.update(direct_absent, labels)
        # Encoding one sensor alone instead of the whole batch changes the floating-point
        # order, which flips a few near-tied pixels of this untrained model; no more.
        pixels = expected.matrix.sum()
        for got, want in ((cell.corrupted, expected), (cell.absent, expected_absent)):
            assert np.abs(got.matrix - want.matrix).sum() <= 0.01 * pixels, cell.corruption.name
            assert got.miou("all") == pytest.approx(want.miou("all"), abs=0.01)
    table = robustness_table({"m": result})
    assert "L      | noise (4)" in table or "noise (4)" in table
    assert result.to_dict()["cells"][0]["corruption"] == "lidar:noise:4"


def test_eval_refuses_a_bad_corruption_before_loading_anything(capsys) -> None:
    assert main(["eval", "--corrupt", "radar:noise", "--frames", "1"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "noise applies to" in error[0]
