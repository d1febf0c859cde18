"""Training with several processes: `torchrun --nproc_per_node 2 -m ml.train` on the CPU with the gloo backend."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml.package import load_package
from ml.synthetic import write_dataset

REPO = Path(__file__).resolve().parents[2]


def torchrun_train(data: Path, output: Path, *options: str, timeout: int) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node 2 -m ml.train DATA --output OUTPUT --device cpu --no-progress ...`"""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "ml.train", str(data), "--output", str(output), "--device", "cpu", "--no-progress", *options]
    return subprocess.run(command, cwd=output.parent, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_two_processes_train_one_model_and_write_one_package(tmp_path):
    write_dataset(tmp_path / "data", 20, size=64, seed=4)

    finished = torchrun_train(
        tmp_path / "data",
        tmp_path / "run",
        *("--architecture", "resnet18", "--input-size", "64", "--epochs", "2", "--batch-size", "4"),
        *("--workers", "0", "--threads", "1", "--no-pretrained"),
        timeout=900,
    )

    assert finished.returncode == 0, finished.stderr[-3000:]
    assert finished.stdout.count("wrote ") == 1  # only rank 0 reports and writes
    _, card = load_package(tmp_path / "run" / "package")
    distributed = card["training"]["distributed"]
    assert (distributed["world_size"], distributed["backend"]) == (2, "gloo")
    # Both processes ended with the very same weights, and those are the ones packaged.
    first, second = distributed["weights_sha256_per_rank"]
    assert first == second
    # 32 training images, 4 per batch and process: each epoch is 4 steps of 8 images.
    assert [h["train_images"] for h in card["training"]["history"]] == [32, 32]
    assert card["metrics"]["validation"]["count"] == 8  # validation was shared out, then gathered whole
    last = tmp_path / "run" / "checkpoints" / "last.pth"
    assert last.is_file() and not list((tmp_path / "run" / "checkpoints").glob("*.partial"))
    assert json.loads((tmp_path / "run" / "package" / "model_card.json").read_text())["sha256"] == card["sha256"]


@pytest.mark.slow
def test_a_data_problem_is_reported_once_and_every_process_stops(tmp_path):
    finished = torchrun_train(tmp_path / "missing", tmp_path / "run", timeout=300)

    assert finished.returncode != 0
    assert finished.stderr.count(f"error: The data folder {tmp_path / 'missing'} does not exist.") == 1
    # torchrun itself reports failed workers with its own traceback; none comes from the training code.
    assert "ml/train.py" not in finished.stderr and "ml/data.py" not in finished.stderr
    assert "exitcode  : 2" in finished.stderr
