"""DistributedDataParallel with 2 gloo CPU processes: both ranks train and stay identical."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
import torch.multiprocessing as mp
import yaml

from mlesam_ros.train.config import train_config_from_dict

CONFIG = {
    "model": {"preset": "tiny", "modalities": ["rgb", "depth"], "num_classes": 25,
              "image_size": [32, 32], "lora_rank": 2, "train_encoder": True},
    "data": {"dataset": "synthetic", "frames": 8, "frames_per_drive": 4, "seed": 5},
    "optim": {"lr": 2e-3, "batch_size": 2, "warmup_steps": 0, "max_steps": 3},
    "loss": {"ohem_threshold": None},
    "modality_dropout": 0.5,
    "device": "cpu",
    "torch_threads": 1,
    "log_every": 1,
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, run_dir: str) -> None:
    """One torchrun-like rank: the environment torchrun would set, then the real train()."""
    from mlesam_ros.train.trainer import train

    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank),
                       "WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port)})  # fmt: skip
    result = train(train_config_from_dict(CONFIG), run_dir, progress=False)
    torch.save({"state": result.model.state_dict(), "step": result.step,
                "losses": [row["loss"] for row in result.history]},
               Path(run_dir) / f"rank{rank}.pt")  # fmt: skip


def test_two_gloo_processes_train_in_lockstep(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    saved = torch.load(tmp_path / "model.pt", weights_only=True)  # written by rank 0 only
    assert ranks[0]["step"] == ranks[1]["step"] == 3
    # Each rank saw different samples (DistributedSampler), so their losses differ ...
    assert ranks[0]["losses"] != ranks[1]["losses"]
    # ... but the all-reduced gradients keep the weights identical on both ranks.
    for name, weight in ranks[0]["state"].items():
        torch.testing.assert_close(weight, ranks[1]["state"][name], rtol=0, atol=0, msg=name)
        torch.testing.assert_close(saved["state_dict"][name], weight, msg=name)
    assert saved["extra"]["step"] == 3


def test_torchrun_launches_the_module_form(tmp_path: Path) -> None:
    """The documented command: `torchrun --nproc_per_node 2 -m mlesam_ros.train --config ...`."""

    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "data": {**CONFIG["data"], "cache_dir": None}}))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(_free_port()), "-m", "mlesam_ros.train",
        "--config", str(config), "--out", str(tmp_path / "run"), "--no-progress",
    ]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert saved["extra"]["step"] == 3
