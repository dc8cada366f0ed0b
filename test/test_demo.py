"""`mlesam demo` writes its bags, pictures and summary with the shipped model (any quality)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlesam_ros import cli
from mlesam_ros.demo import Schedule
from mlesam_ros.pipeline.core import default_model_path

# Packages of the extras (setup.py: torch, sam2, train, dds, test), absent from the lean
# install `make demo` uses: the demo must run with every one of them missing.
EXTRAS_ONLY = ("torch", "torchvision", "segment_anything", "sam2", "onnxscript", "matplotlib",
               "cyclonedds", "tensorrt", "mcap", "mcap_ros2")  # fmt: skip
WITHOUT_EXTRAS = (
    "import sys\n"
    f"for name in {EXTRAS_ONLY!r}:\n"
    "    sys.modules[name] = None  # `import name` now raises ImportError\n"
    "from mlesam_ros import cli\n"
    "sys.exit(cli.main(sys.argv[1:]))\n"
)


def test_schedule_has_daylight_dropout_and_night() -> None:
    schedule = Schedule(48)
    dropout = [i for i in range(48) if schedule.lidar_missing(i)]
    night = [i for i in range(48) if schedule.condition(i) == "night"]
    assert dropout == list(range(17, 26)) and night == list(range(31, 48))
    assert not set(dropout) & set(night)
    # The strip shows the middle of each stretch; tiny drives still get one of each.
    assert schedule.strip_frames() == [8, 21, 39]
    assert Schedule(4).strip_frames() == [0, 1, 3]
    assert Schedule(3).strip_frames() == [0, 1, 2]


def test_demo_writes_bags_strip_gif_and_summary(tmp_path, capsys) -> None:
    try:
        default_model_path()
    except FileNotFoundError:
        pytest.skip("the demo model is not shipped in this checkout")
    from PIL import Image

    out = tmp_path / "demo"
    # First run as `make demo` runs it: the runtime install only (no torch, no extras).
    root = Path(__file__).resolve().parents[1]
    path = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS, "demo", "--out", str(out), "--frames", "4",
         "--quiet"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    printed = run.stdout
    # The header comes first, before the work; results after.
    assert printed.splitlines()[0].startswith("mlesam demo: 4 frames at 320x240")
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
    assert set(summary["demo"]["frame_miou"]) == {"0", "1", "2", "3"}
    # Strip: title, column names, three captioned rows of four 320x240 panels, the legend
    # (its layout is tested in test_demo_render.py).
    strip = np.asarray(Image.open(out / "strip.png"))
    assert strip.shape[1] == 4 * 320 and strip.shape[0] > 3 * (240 + 30) + 100
    # Row 2 is frame 1, the LiDAR dropout: its LiDAR panel has the red "absent" frame.
    from mlesam_ros.demo import render

    top = 30 + render.HEADER_HEIGHT + (240 + render.CAPTION_HEIGHT) + render.CAPTION_HEIGHT
    absent = strip[top : top + 240, 3 * 320 :]
    assert (absent[: render.ABSENT_BORDER] == render.ABSENT_RED).all()
    assert not (strip[top - 240 - 30 : top - 30, 3 * 320 :][:4] == render.ABSENT_RED).all()
    gif = Image.open(out / "demo.gif")
    assert gif.n_frames == 4 and gif.size[0] == 4 * 320 and gif.size[1] > 240 + 30 + 100
    # Running again into its own folder replaces the previous drive instead of mixing two.
    assert cli.main(["demo", "--out", str(out), "--frames", "3", "--quiet"]) == 0
    assert json.loads((out / "summary.json").read_text())["frames"] == 3
    # A folder that is not a previous demo's output is never deleted.
    foreign = tmp_path / "foreign"
    (foreign / "input_bag").mkdir(parents=True)
    assert cli.main(["demo", "--out", str(foreign), "--frames", "3", "--quiet"]) == 2
    assert "not a previous demo's output" in capsys.readouterr().err
    assert (foreign / "input_bag").is_dir()
