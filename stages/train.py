"""train@<model>-<subset> (and train_head@<head>-<subset>) stage: train one model on one
intensity subset, every fold in split.folds -> models/<model>-<subset>/fold<k>.pt,
logs/train/<model>-<subset>/ (dvclive). A head over the pretrained encoder reads
encoded.h5 instead of features.h5, and trains on its changed copies too (encode.copies).

    python stages/train.py cnn all
    torchrun --nproc_per_node 2 stages/train.py cnn all     # DistributedDataParallel
"""

from dvclive import Live

from speech_emotion import atomic, checkpoint, inputs, labels, machine, stage, training
from speech_emotion.device import is_main_process
from speech_emotion.paths import DATA_CSV, TRAIN_LOGS, cell, model_dir


def main() -> None:
    model, subset, p = stage.cell_arguments(__doc__, "model", threads=lambda p: p.train.threads)
    name = cell(model, subset)
    table = labels.read_table(DATA_CSV)
    feature_set = inputs.read(model, table, p)   # features.h5 or encoded.h5, rows of data.csv
    features = feature_set.features

    if not is_main_process():      # torchrun ranks > 0 train, rank 0 writes
        training.train_cell(model, subset, p, table, features, feature_set.attrs,
                            save=lambda k, c: None, progress=False, log=lambda *a, **k: None,
                            copies=feature_set.copies)
        return
    with atomic.atomic_dir(model_dir(model, subset)) as out, \
            atomic.atomic_dir(TRAIN_LOGS / name) as logs:
        # dvclive only writes the per-epoch TSVs here (no end(): no summary, no git/DVC calls)
        live = Live(str(logs), save_dvc_exp=False, dvcyaml=None, report=None)

        def log_epoch(run: str, record: dict) -> None:   # plots/metrics/fold<k>[/member<m>]/...
            live.step = record["epoch"]
            live.log_metric(f"{run}/train/loss", record["train_loss"])
            for key in ("loss", "ua", "wa"):   # none with train.monitor: none
                if f"val_{key}" in record:
                    live.log_metric(f"{run}/val/{key}", record[f"val_{key}"])
            live.log_metric(f"{run}/lr", record["lr"])

        summaries = training.train_cell(
            model, subset, p, table, features, feature_set.attrs,
            save=lambda k, c: checkpoint.save(checkpoint.path_for(out, k), c),
            on_epoch=log_epoch, copies=feature_set.copies)
        # seconds per epoch are printed, not written: a tracked output holds no clock time,
        # so the same params give the same dvc.lock
        atomic.write_json(logs / "summary.json", {"cell": name, "folds": [
            {k: v for k, v in s.items() if k != "seconds_per_epoch"} for s in summaries],
            "machine": machine.describe()})   # the CPU and kernels that made these weights
    for s in summaries:
        chosen = (f"validation UA {s['validation']['ua']:.4f} (actors not in test)"
                  if s["validation"] else "last epoch kept, validation actors trained too")
        member = f" member {s['member']}" if "member" in s else ""
        print(f"{name} fold {s['fold']}{member}: epoch {s['best_epoch']}/{s['epochs_run']}, "
              f"{chosen}, {s['parameters']} parameters, {s['seconds_per_epoch']:.1f} s/epoch")


if __name__ == "__main__":
    stage.run(main)
