"""Every script in ``benchmarks/`` runs, in a seconds-long smoke mode, so none can rot.

Each script gets small sizes and one or two repeats; the figures are not checked (timing
goals live in the benchmarks themselves, never in tests), only that the script runs to its
end and prints its report. A new script without a smoke entry here fails the suite.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"

# script → (smoke arguments, modules it needs, a word its report prints)
SMOKE = {
    "bench_attention.py": (["--size", "64", "--batch", "1", "--runs", "1"], ["torch"], "sdpa"),
    "bench_cameras.py": (["--frames", "2", "--cameras", "2", "--width", "64", "--height", "48",
                          "--lidar-beams", "8", "--azimuth-steps", "128", "--repeats", "1"],
                         [], "one-camera nodes"),
    "bench_codec.py": (["--repeat", "2"], [], "decode"),
    "bench_compressed.py": (["--sizes", "160x120", "--repeats", "2", "--frames", "2",
                             "--drive-size", "160x120"], [], "pixels agreeing"),
    "bench_dds.py": (["--frames", "3", "--width", "64", "--height", "48"], ["cyclonedds"],
                     "frames labelled"),
    "bench_dds_profile.py": (["--frames", "3", "--width", "64", "--height", "48",
                              "--lidar-beams", "8"], ["cyclonedds"], "frames labelled"),
    "bench_encoder_flops.py": (["--presets", "tiny", "--modalities", "2"], ["torch"], "GFLOP"),
    "bench_eval.py": (["--frames", "2", "--repeats", "1"], ["torch"], "of 4"),
    "bench_frame_stages.py": (["--sizes", "160x120", "--points", "4096", "--frames", "2",
                               "--rounds", "1"], [], "overhead"),
    "bench_robustness.py": (["--checkpoint", "demo=models/mlesam_demo_tiny.pt", "--frames", "1",
                             "--sensors", "lidar", "--batch-size", "1"], ["torch"],
                            "robustness.json"),
    "bench_projection.py": (["--points", "4096", "--width", "160", "--height", "120",
                             "--repeats", "2"], [], "project_lidar"),
    "bench_synthetic.py": (["--width", "64", "--height", "48", "--lidar-beams", "8",
                            "--azimuth-steps", "64", "--frames", "1"], [], "render frame"),
    "frame_path_agreement.py": (["--frames", "2"], [], "mIoU new"),
}  # fmt: skip


def test_every_benchmark_has_a_smoke_run() -> None:
    assert sorted(p.name for p in BENCHMARKS.glob("*.py")) == sorted(SMOKE)


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_benchmark_runs_in_smoke_mode(script: str, tmp_path: Path) -> None:
    arguments, needs, printed = SMOKE[script]
    for module in needs:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{script} needs {module}")
    if script in ("frame_path_agreement.py", "bench_robustness.py"):
        arguments = [*arguments, "--out", str(tmp_path / "out")]
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *arguments], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert printed in done.stdout, done.stdout[-2000:]
