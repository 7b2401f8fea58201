"""DistributedDataParallel: two CPU processes (gloo, via torchrun) agree with one process.

The test launches this file under `torchrun --nproc_per_node 2`; each rank trains the tiny
CNN of test_training on the same easy task and saves what it ended with.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from speech_emotion import training  # noqa: E402

from test_training import FEATURE_PARAMS, LABELS, fold_data, tiny_params  # noqa: E402

OVERRIDES = {"train.epochs": 5, "train.batch_size": 16}


def run(**kwargs):
    p = tiny_params(**OVERRIDES)
    return training.train_fold("cnn", p.cnn, p.train, fold_data(), LABELS, seed=0,
                               feature_params=FEATURE_PARAMS, progress=False, **kwargs)


def worker(out: Path) -> None:
    """One torchrun rank: train, then save this rank's weights and record."""
    torch.set_num_threads(1)
    result = run()
    rank = int(os.environ["RANK"])
    torch.save({"state_dict": result["state_dict"], "history": result["history"],
                "best_epoch": result["best_epoch"], "world": int(os.environ["WORLD_SIZE"])},
               out / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_processes_agree_with_one(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         __file__, str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert all(r["world"] == 2 for r in ranks)
    # DDP keeps the processes in step: the same weights and the same early-stopping choice
    a, b = (r["state_dict"] for r in ranks)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert ranks[0]["best_epoch"] == ranks[1]["best_epoch"]
    strip = lambda history: [{k: v for k, v in h.items() if k != "seconds"}  # noqa: E731
                             for h in history]
    assert strip(ranks[0]["history"]) == strip(ranks[1]["history"])   # all-reduced loss
    # and they reach what one process reaches on the same task and global batch
    torch.set_num_threads(1)
    single = run()
    ddp = ranks[0]["history"]
    assert len(ddp) == len(single["history"])
    for history in (ddp, single["history"]):
        assert history[-1]["train_loss"] < 0.7 * history[0]["train_loss"]
        assert max(h["val_ua"] for h in history) >= 0.9
    assert abs(ddp[-1]["train_loss"] - single["history"][-1]["train_loss"]) < 0.25


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
