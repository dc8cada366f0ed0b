"""MLE-SAM forward pass: shapes, presence-mask invariance, routing and input validation."""

from __future__ import annotations

import pytest
import torch

from mlesam_ros.modalities import MODALITIES
from mlesam_ros.model import MLESAMConfig, build_mlesam

SIZE = (64, 96)
CLASSES = 5


def _model(modalities: tuple[str, ...], **options: object) -> torch.nn.Module:
    torch.manual_seed(0)
    config = MLESAMConfig(
        preset="tiny",
        modalities=modalities,
        num_classes=CLASSES,
        image_size=SIZE,
        lora_rank=4,
        **options,
    )
    model = build_mlesam(config).eval()
    # Non-zero experts so that modalities really differ inside the encoder.
    for name, parameter in model.named_parameters():
        if ".lora_b_" in name:
            torch.nn.init.normal_(parameter, std=0.05)
    return model


def _images(batch: int, modalities: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, modalities, 3, *SIZE, generator=generator) * 255


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_output_shapes_and_finite_for_1_to_4_modalities(count: int) -> None:
    model = _model(MODALITIES[:count])
    with torch.no_grad():
        out = model(_images(2, count))
    for key in ("logits", "mask_logits", "aux_logits"):
        assert out[key].shape == (2, CLASSES, *SIZE)
        assert torch.isfinite(out[key]).all()
    torch.testing.assert_close(out["logits"], out["mask_logits"] + out["aux_logits"])
    assert out["routing_weights"].shape == (2, 4, count)
    torch.testing.assert_close(out["routing_weights"].sum(-1), torch.ones(2, 4))


@pytest.mark.parametrize("fusion", ["router", "mean", "both"])
def test_absent_modality_has_exactly_zero_influence(fusion: str) -> None:
    model = _model(("rgb", "depth", "thermal"), fusion=fusion)
    images = _images(2, 3)
    present = torch.tensor([[True, False, True], [False, True, False]])
    with torch.no_grad():
        reference = model(images, present)
        changed = images.clone()
        changed[0, 1] = torch.rand(3, *SIZE) * 255
        changed[1, 0] = float("nan")  # a dead sensor delivering garbage
        changed[1, 2] = float("inf")
        other = model(changed, present)
    for key in ("logits", "mask_logits", "aux_logits", "routing_weights"):
        assert torch.isfinite(other[key]).all()
        assert torch.equal(other[key], reference[key]), key
    # ...while the same change on a present modality does change the output.
    with torch.no_grad():
        changed_present = images.clone()
        changed_present[0, 0] = torch.rand(3, *SIZE) * 255
        moved = model(changed_present, present)["logits"]
    assert (moved[0] - reference["logits"][0]).abs().max() > 1e-3
    torch.testing.assert_close(moved[1], reference["logits"][1], rtol=0, atol=0)


def test_nothing_present_gives_finite_output_independent_of_pixels() -> None:
    model = _model(("rgb", "depth"))
    absent = torch.zeros(1, 2, dtype=torch.bool)
    with torch.no_grad():
        first = model(_images(1, 2, seed=1), absent)
        second = model(torch.full((1, 2, 3, *SIZE), float("nan")), absent)
    assert torch.isfinite(first["logits"]).all()
    assert torch.equal(first["logits"], second["logits"])
    assert (first["routing_weights"] == 0).all()


def test_single_present_modality_equals_single_modality_batch_row() -> None:
    """A sample's output depends only on itself, not on the other samples in the batch."""
    model = _model(("rgb", "depth"))
    images = _images(3, 2)
    present = torch.tensor([[True, True], [True, False], [False, True]])
    with torch.no_grad():
        together = model(images, present)["logits"]
        alone = model(images[1:2], present[1:2])["logits"]
    torch.testing.assert_close(together[1:2], alone, rtol=1e-5, atol=1e-5)


def test_routing_weights_follow_presence_and_top_k() -> None:
    model = _model(("rgb", "depth", "thermal", "lidar"), fusion="router", router_top_k=2)
    present = torch.tensor(
        [[True, True, True, True], [True, False, True, False], [False, False, True, False]]
    )
    with torch.no_grad():
        weights = model(_images(3, 4), present)["routing_weights"]
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4))
    assert (weights[~present[:, None, :].expand_as(weights)] == 0).all()
    # Top-2 of 4: exactly two non-zero weights per level; with one present it gets all.
    assert ((weights[0] > 0).sum(-1) == 2).all()
    assert ((weights[1] > 0) == present[1]).all()
    assert (weights[2, :, 2] == 1).all()


def test_mean_fusion_weights_are_uniform_over_present() -> None:
    model = _model(("rgb", "depth", "thermal"), fusion="mean")
    present = torch.tensor([[True, False, True]])
    with torch.no_grad():
        weights = model(_images(1, 3), present)["routing_weights"]
    expected = torch.tensor([0.5, 0.0, 0.5]).expand(1, 4, 3)
    torch.testing.assert_close(weights, expected)


def test_dict_input_marks_missing_modalities_absent() -> None:
    model = _model(("rgb", "depth", "thermal"))
    images = _images(2, 3)
    with torch.no_grad():
        stacked = model(images, torch.tensor([[True, False, True]] * 2))
        as_dict = model({"rgb": images[:, 0], "thermal": images[:, 2]})
    assert torch.equal(as_dict["logits"], stacked["logits"])


def test_bad_inputs_name_the_problem() -> None:
    model = _model(("rgb", "depth"))
    with pytest.raises(ValueError, match=r"images: expected \(B, 2, 3, H, W\)"):
        model(torch.zeros(1, 3, 3, *SIZE))
    with pytest.raises(ValueError, match="unknown modalities lidar"):
        model({"lidar": torch.zeros(1, 3, *SIZE)})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"preset": "vit_x"}, "preset: unknown 'vit_x'"),
        ({"image_size": (60, 64)}, "image_size"),
        ({"fusion": "max"}, "fusion: unknown 'max'"),
        ({"router_top_k": 3}, "router_top_k"),
        ({"num_classes": 1}, "num_classes"),
        ({"taps": (0, 1, 2)}, "taps"),
        ({"modalities": ("rgb", "radar")}, "unknown radar"),
    ],
)
def test_config_errors_name_the_field(options: dict, message: str) -> None:
    values = {"preset": "tiny", "modalities": ("rgb", "depth"), **options}
    with pytest.raises(ValueError, match=message):
        MLESAMConfig(**values)


def test_config_round_trips_through_plain_data() -> None:
    config = MLESAMConfig(preset="tiny", modalities=("depth", "rgb"), image_size=(64, 128))
    data = config.to_dict()
    assert data["modalities"] == ["depth", "rgb"] and data["taps"] == [0, 1, 2, 3]
    assert MLESAMConfig.from_dict(data) == config
    with pytest.raises(ValueError, match="unknown keys colour"):
        MLESAMConfig.from_dict({**data, "colour": 1})
