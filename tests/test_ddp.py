"""DistributedDataParallel: two CPU processes (gloo, via torchrun) agree with one process.

The test launches this file under `torchrun --nproc_per_node 2`; each rank trains the tiny
CNN of test_training on the same easy task and saves what it ended with.
"""

from __future__ import annotations

import os
import socket
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_ranks(out: Path) -> list[dict]:
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


@pytest.fixture(scope="module")
def one_node(tmp_path_factory):
    """`torchrun --standalone --nproc_per_node 2`: two processes on one machine."""
    out = tmp_path_factory.mktemp("one_node")
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         __file__, str(out)],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return load_ranks(out)


@pytest.mark.slow
def test_two_nodes_agree_with_one_node(one_node, tmp_path):
    """The README's multi-node form, `torchrun --nnodes 2 --node_rank K --master_addr A
    --master_port P`, with both "nodes" on this machine (one process each, rendezvous over
    loopback): the same global batch over the same two ranks gives the same weights, bit
    for bit, as two processes on one node."""
    port = str(free_port())
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
         "--node_rank", str(rank), "--master_addr", "127.0.0.1", "--master_port", port,
         __file__, str(tmp_path)],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    for node in nodes:
        _, err = node.communicate(timeout=300)
        assert node.returncode == 0, err[-3000:]
    ranks = load_ranks(tmp_path)
    assert [r["world"] for r in ranks] == [2, 2]
    for multi, single in zip(ranks, one_node, strict=True):
        assert all(torch.equal(multi["state_dict"][k], single["state_dict"][k])
                   for k in single["state_dict"])


@pytest.mark.slow
def test_two_processes_agree_with_one(one_node):
    ranks = one_node
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
