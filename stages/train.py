"""train@<model>-<subset> stage: train one model on one intensity subset, every fold in
split.folds -> models/<model>-<subset>/fold<k>.pt, logs/train/<model>-<subset>/ (dvclive).

    python stages/train.py cnn all
    torchrun --nproc_per_node 2 stages/train.py cnn all     # DistributedDataParallel
"""

import argparse
from pathlib import Path

import torch
from dvclive import Live

from speech_emotion import atomic, checkpoint, labels, params, store, training

DATA = Path("data/interim/data.csv")
FEATURES = Path("data/processed/features.h5")
MODELS = Path("models")
LOGS = Path("logs/train")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model")
    ap.add_argument("subset")
    args = ap.parse_args()
    cell = f"{args.model}-{args.subset}"
    p = params.load()
    if p.train.threads:
        torch.set_num_threads(p.train.threads)
    table = labels.read_table(DATA)
    feature_set = store.read(FEATURES)
    store.check_params(feature_set.attrs, p.features)
    features = feature_set.features[feature_set.rows(table["path"])]   # rows of data.csv

    if not training.is_main_process():      # torchrun ranks > 0 train, rank 0 writes
        training.train_cell(args.model, args.subset, p, table, features, feature_set.attrs,
                            save=lambda k, c: None, progress=False, log=lambda *a, **k: None)
        return
    with atomic.atomic_dir(MODELS / cell) as model_dir, atomic.atomic_dir(LOGS / cell) as logs:
        # dvclive only writes the per-epoch TSVs here (no end(): no summary, no git/DVC calls)
        live = Live(str(logs), save_dvc_exp=False, dvcyaml=None, report=None)

        def log_epoch(fold: int, record: dict) -> None:   # plots/metrics/fold<k>/{train,val}/...
            live.step = record["epoch"]
            live.log_metric(f"fold{fold}/train/loss", record["train_loss"])
            for key in ("loss", "ua", "wa"):
                live.log_metric(f"fold{fold}/val/{key}", record[f"val_{key}"])
            live.log_metric(f"fold{fold}/lr", record["lr"])

        summaries = training.train_cell(
            args.model, args.subset, p, table, features, feature_set.attrs,
            save=lambda k, c: checkpoint.save(checkpoint.path_for(model_dir, k), c),
            on_epoch=log_epoch)
        atomic.write_json(logs / "summary.json", {"cell": cell, "folds": summaries})
    for s in summaries:
        print(f"{cell} fold {s['fold']}: best epoch {s['best_epoch']}/{s['epochs_run']}, "
              f"validation UA {s['validation']['ua']:.4f} (actors not in test), "
              f"{s['parameters']} parameters, {s['seconds_per_epoch']:.1f} s/epoch")


if __name__ == "__main__":
    main()
