"""`mlesam demo` writes its bags, pictures and summary with the shipped model (any quality)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlesam_ros import cli
from mlesam_ros.demo import Schedule
from mlesam_ros.pipeline.core import default_model_path


def test_schedule_has_daylight_dropout_and_night() -> None:
    schedule = Schedule(48)
    dropout = [i for i in range(48) if schedule.lidar_missing(i)]
    night = [i for i in range(48) if schedule.condition(i) == "night"]
    assert dropout == list(range(17, 26)) and night == list(range(31, 48))
    assert not set(dropout) & set(night)


def test_demo_writes_bags_strip_gif_and_summary(tmp_path, capsys) -> None:
    try:
        default_model_path()
    except FileNotFoundError:
        pytest.skip("the demo model is not shipped in this checkout")
    from PIL import Image

    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--frames", "4", "--quiet"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == summary["rgb_messages"] == 4
    # Frame 1 has no LiDAR, frame 3 is at night (Schedule(4)).
    assert summary["demo"]["schedule"] == {"lidar_dropout_frames": [1], "night_frames": [3]}
    assert summary["fused_modalities"] == {"rgb+depth+thermal+lidar": 3, "rgb+depth+thermal": 1}
    assert set(summary["miou"]) == {"all", "rgb+depth+thermal+lidar", "rgb+depth+thermal",
                                    "condition sun", "condition night"}
    assert all(0.0 <= value <= 1.0 for value in summary["miou"].values())
    assert "mIoU" in printed and "condition night" in printed
    for name in ("input_bag", "output_bag", "strip", "gif", "summary"):
        assert Path(summary["demo"]["files"][name]).exists(), name
    strip = np.asarray(Image.open(out / "strip.png"))
    assert strip.shape == (3 * 240, 3 * 320, 3)
    gif = Image.open(out / "demo.gif")
    assert gif.n_frames == 4 and gif.size == (3 * 320, 240)
    # Running again into its own folder replaces the previous drive instead of mixing two.
    assert cli.main(["demo", "--out", str(out), "--frames", "3", "--quiet"]) == 0
    assert json.loads((out / "summary.json").read_text())["frames"] == 3
    # A folder that is not a previous demo's output is never deleted.
    foreign = tmp_path / "foreign"
    (foreign / "input_bag").mkdir(parents=True)
    assert cli.main(["demo", "--out", str(foreign), "--frames", "3", "--quiet"]) == 2
    assert "not a previous demo's output" in capsys.readouterr().err
    assert (foreign / "input_bag").is_dir()
