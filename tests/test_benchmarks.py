"""benchmarks/accuracy.py's bookkeeping: how rows are named and how saved runs make one table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import transfer  # noqa: E402

import accuracy  # noqa: E402


def fold_result(ua: float) -> dict:
    folds = {f"fold{k}": {"ua": ua, "wa": ua, "macro_f1": ua} for k in (1, 2)}
    return {"ua": ua, "wa": ua, "macro_f1": ua, "n_folds": 2, "folds": folds}


def test_system_label_names_ensembles_and_tagged_variants():
    assert accuracy.system_label("cnn", 1, "") == "cnn"
    assert accuracy.system_label("cnn_transformer", 2, "") == "cnn_transformer-ensemble2"
    assert (accuracy.system_label("cnn_transformer", 2, "deltas2")
            == "cnn_transformer-ensemble2+deltas2")
    # baselines have no seed ensembles, but a tagged run's settings (split.*) reach them
    assert accuracy.system_label("mfcc_mlp", 3, "") == "mfcc_mlp"
    assert accuracy.system_label("mfcc_mlp", 1, "loso") == "mfcc_mlp+loso"


def test_saved_runs_of_defaults_and_an_ablation_make_one_table(tmp_path, capsys):
    default = tmp_path / "default.json"
    ablation = tmp_path / "ablation.json"
    default.write_text(json.dumps({"cnn/all/seed0": fold_result(0.5)}))
    ablation.write_text(json.dumps({"cnn+deltas2/all/seed0": fold_result(0.75)}))
    assert accuracy.main(["--table", str(default), str(ablation)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| cnn")]
    assert rows[0].startswith("| cnn | all | 50.0 ± 0.0 |")
    assert rows[1].startswith("| cnn+deltas2 | all | 75.0 ± 0.0 |")


def test_table_refuses_runs_that_do_not_cover_every_system_and_seed(tmp_path):
    saved = tmp_path / "runs.json"
    saved.write_text(json.dumps({"cnn/all/seed0": fold_result(0.5),
                                 "cnn+deltas2/all/seed1": fold_result(0.5)}))
    with pytest.raises(SystemExit, match="cnn/all/seed1"):
        accuracy.main(["--table", str(saved)])


def test_a_tag_that_would_break_the_keys_is_refused_before_any_work(tmp_path):
    with pytest.raises(SystemExit):
        accuracy.main(["--data", str(tmp_path), "--tag", "a/b"])


def test_table_leaves_out_rows_that_were_not_run(tmp_path, capsys):
    saved = tmp_path / "runs.json"
    saved.write_text(json.dumps({"cnn/all/seed0": fold_result(0.5),
                                 "cnn/strong/seed0": fold_result(0.5),
                                 "cnn+deltas2/all/seed0": fold_result(0.75)}))
    assert accuracy.main(["--table", str(saved)]) == 0
    rows = [line.split(" | ")[:2] for line in capsys.readouterr().out.splitlines()[2:]]
    assert rows == [["| cnn", "all"], ["| cnn", "strong"], ["| cnn+deltas2", "all"]]


def test_kept_models_score_again_to_the_same_figures(tmp_path, capsys):
    """--keep-models: the fold checkpoints stay, and evaluate_cell on them (with the cached
    features and the same params) gives the figures the run printed and saved."""
    from speech_emotion import evaluate, labels, params, store
    from speech_emotion.sources import synthetic

    corpus, kept, cache, out = (tmp_path / name for name in ("corpus", "kept", "cache", "out.json"))
    synthetic.generate(corpus, actors=4, seed=0, progress=False)
    tiny = {"train.epochs": "2", "cnn.channels": "[4,8]", "train.channels_last": "false"}
    sets = [arg for key, value in tiny.items() for arg in ("-S", f"{key}={value}")]
    assert accuracy.main(["--data", str(corpus), "--systems", "cnn", "--subsets", "strong",
                          "--folds", "1", *sets, "--keep-models", str(kept),
                          "--features-cache", str(cache), "--out", str(out)]) == 0
    saved = json.loads(out.read_text())["cnn/strong/seed0"]
    folder = kept / "cnn" / "seed0" / "cnn-strong"
    assert sorted(p.name for p in folder.iterdir()) == ["fold1.pt"]
    [features_file] = cache.glob("*.h5")
    run = params.load(accuracy.ROOT / "params.yaml",
                      {"split.folds": [1],
                       **accuracy.parse_overrides([f"{k}={v}" for k, v in tiny.items()])})
    again = evaluate.evaluate_cell(folder, "strong", labels.build_table(corpus),
                                   store.read(features_file), run, progress=False,
                                   log=lambda *a, **k: None).metrics
    assert (again["ua"], again["wa"], again["macro_f1"]) == (saved["ua"], saved["wa"],
                                                             saved["macro_f1"])


def test_plot_draws_saved_runs_whatever_seeds_each_row_has(tmp_path):
    """--plot with --table: rows with other seeds (a baseline without randomness, a subset
    run on fewer seeds) are drawn as they are, the same runs give the same bytes, and
    --plot alone is refused before any work."""
    saved = tmp_path / "runs.json"
    saved.write_text(json.dumps({"mfcc_mlp/all/seed0": fold_result(0.45),
                                 "cnn/all/seed0": fold_result(0.6),
                                 "cnn/all/seed1": fold_result(0.62),
                                 "cnn/strong/seed0": fold_result(0.7)}))
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    assert accuracy.main(["--table", str(saved), "--plot", str(first)]) == 0
    assert accuracy.main(["--table", str(saved), "--plot", str(second)]) == 0
    png = first.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    assert png == second.read_bytes()
    assert not list(tmp_path.glob("*.tmp*"))                 # written whole, then renamed
    with pytest.raises(SystemExit):
        accuracy.main(["--plot", str(tmp_path / "c.png")])


def test_cpu_kernels_names_atens_level_and_a_onednn_cap(monkeypatch):
    """Saved neural results record the CPU kernels that made them (they decide the bits)."""
    import torch

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert accuracy.cpu_kernels() == torch.backends.cpu.get_cpu_capability()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert accuracy.cpu_kernels().endswith(", oneDNN AVX2")


@pytest.mark.slow
def test_train_speed_times_this_tree_against_a_revision():
    """benchmarks/train_speed.py --against REV: both trees' per-epoch figures and the ratio."""
    import subprocess

    tiny = ["-S", "cnn.channels=[4, 8]", "-S", "cnn_transformer.channels=[4, 8]",
            "-S", "cnn_transformer.d_model=16", "-S", "cnn_transformer.n_heads=2",
            "-S", "cnn_transformer.n_layers=1", "-S", "features.duration_s=1.0"]
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(root / "benchmarks/train_speed.py"), "--against",
                           "HEAD", "--rows", "32", "--epochs", "1", "--repeat", "1", *tiny],
                          capture_output=True, text=True, timeout=300, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    for model in ("cnn", "cnn_transformer"):
        line = next(out for out in done.stdout.splitlines()
                    if out.strip().startswith(f"{model}:"))
        assert "HEAD" in line and "this tree" in line and line.endswith("x as fast"), line


def test_transfer_rule_keeps_utterance_only_accuracy_and_merges_runs(tmp_path, capsys):
    """benchmarks/transfer.py: the rule picks the best mean transfer column at the
    validation level among recipes within 2 points of the reference's utterance-only UA
    and at most 0.5 below its speaker columns; runs saved one per core print as one table."""
    def row(utt, rest, changed=None):
        return {"utt": utt, "spk": rest, **{c: rest for c in transfer.SPEAKERS},
                **{c: rest if changed is None else changed for c in transfer.CHANGED}}

    def run(results):
        return {"system": "whisper_mlp", "seed": 0, "folds": [1], "recipes": {},
                "seconds": {}, "results": {name: {"validation": {"fold1": r}}
                                           for name, r in results.items()}}

    a = run({"default": row(0.80, 0.60), "prior0": row(0.12, 0.90)})
    b = run({"prior5": row(0.79, 0.80), "prior20": row(0.81, 0.70)})
    summary = transfer.summarise(transfer.merge([a, b]))
    assert transfer.choose(summary) == "prior5"      # prior0 is best but fails utt
    # changed recordings bought with other voices: best mean, but its speaker columns
    # fall more than 0.5 points below the reference's
    c = run({"prior5": row(0.79, 0.80), "rooms": row(0.80, 0.79, changed=0.99),
             "rooms-kept": row(0.80, 0.797, changed=0.90)})
    summary = transfer.summarise(c)
    assert transfer.choose(summary, "prior5") == "rooms-kept"
    for name, saved in (("a.json", a), ("b.json", b)):
        (tmp_path / name).write_text(json.dumps(saved))
    assert transfer.main(["--table", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "chosen by the rule (validation actors, reference default): prior5" in out
    assert "prior20" in out
    # a run without the changed columns (saved before they existed) still prints
    old = run({"default": {k: v for k, v in row(0.8, 0.6).items() if k not in transfer.CHANGED}})
    transfer.print_table(old)
    assert "default" in capsys.readouterr().out


def test_transfer_small_speaker_sets_use_only_the_drawn_utterances():
    """Every in-corpus column is scored, each a UA, for a speaker-normalised head."""
    import torch

    from speech_emotion import models
    from speech_emotion.normalisation import fit_normalisation
    from speech_emotion.params import WhisperMLPConfig

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 8, 2)).astype(np.float32)
    y = np.arange(40) % 8
    actors = np.repeat([1, 2], 20)
    torch.manual_seed(0)
    model = models.build("whisper_mlp", WhisperMLPConfig(
        layers="all", statistics=["mean"], layer_weighting="learnt", layer_dropout=0.0,
        hidden=0, dropout=0.0), 8, 8, 2).eval()
    ckpt = {"normalisation": fit_normalisation(x, per_frame=True, speakers=actors,
                                               speaker_prior=0.0)}
    rows = np.arange(40)
    first = transfer.scores(model, ckpt, x, y, actors, rows, list(transfer.EMOTION_NAMES),
                            [0], np.random.default_rng(1))
    assert set(first) == {"utt", "spk", "n3", "n5", "n10", "skew"}
    assert all(0.0 <= v <= 1.0 for v in first.values())


@pytest.mark.parametrize("monitor", ["none", "ua"])
def test_transfer_early_stopping_holds_out_actors_of_the_fitted_rows_only(monitor, monkeypatch):
    """Under train.monitor ua, transfer.fit holds two of the fitted rows' actors out (one
    male, one female) to pick the epoch; they train nothing, and no other actor is seen."""
    from speech_emotion import params, training

    seen = {}

    def spy(model, config, train, data, labels, **kwargs):
        seen["data"] = data
        raise StopIteration

    monkeypatch.setattr(training, "train_fold", spy)
    p = params.load(Path(__file__).resolve().parents[1] / "params.yaml",
                    {"train.monitor": monitor})
    actors = np.repeat(np.arange(1, 9), 4)                   # 8 actors, 4 rows each
    x = np.zeros((len(actors), 4, 2), np.float32)
    y = np.arange(len(actors)) % 8
    rows = np.flatnonzero(actors <= 6)                       # actors 7, 8 are elsewhere
    with pytest.raises(StopIteration):
        transfer.fit("whisper_mlp", p, x, y, actors, rows, 3, {}, np.stack([x], axis=1))
    data = seen["data"]
    trained = {int(str(s).split("~")[0]) for s in data.speakers_train}
    held = set(data.speakers_val.tolist())
    assert trained | held == {1, 2, 3, 4, 5, 6} and not trained & held
    if monitor == "none":
        assert not held and len(data.y_train) == 2 * len(rows)   # the rows and one copy
    else:
        assert len(held) == 2 and {a % 2 for a in held} == {0, 1}  # odd actors are male
        assert len(data.y_val) == 8 and len(data.y_train) == 2 * (len(rows) - 8)


def test_transfer_fits_a_frame_head_and_scores_its_changed_inputs():
    """transfer.fit rebuilds a frame head (its layers from the store's n_states) and the
    scores take its (N, L*D, G) inputs, changed ones included."""
    from speech_emotion import params

    p = params.load(Path(__file__).resolve().parents[1] / "params.yaml",
                    {"train.epochs": 2, "train.speaker_norm.models": ["whisper_asp"]})
    rng = np.random.default_rng(0)
    actors = np.repeat(np.arange(1, 7), 16)
    x = rng.standard_normal((len(actors), 3 * 4, 5)).astype(np.float32)   # L 3, D 4, G 5
    y = np.arange(len(actors)) % 8
    model, ckpt = transfer.fit("whisper_asp", p, x, y, actors, np.flatnonzero(actors <= 4), 0,
                               {"n_states": 3})
    assert model.n_layers == 3 and ckpt["normalisation"]["mean"].shape == (12,)
    rows = np.flatnonzero(actors > 4)
    out = transfer.scores(model, ckpt, x, y, actors, rows, list(transfer.EMOTION_NAMES), [0],
                          rng, {c: x + 0.1 for conditions in transfer.CHANGED.values()
                                for c in conditions})
    assert all(0 <= out[c] <= 1 for c in transfer.COLUMNS if c not in ("gender", "intensity"))


def test_fusion_chooses_each_folds_weight_on_validation_actors(tmp_path, capsys):
    """benchmarks/fusion.py on two kept cells trained under train.monitor: ua: a weight per
    fold from the candidates, the validation and test UA of every candidate, and at head
    weight 1 the head's own test UA (the rows line up); members trained under monitor: none
    (nothing held out) get the fixed weight instead."""
    import fusion as fusion_benchmark

    corpus, kept, cache = (tmp_path / name for name in ("corpus", "kept", "cache"))
    from speech_emotion.sources import synthetic

    synthetic.generate(corpus, actors=4, seed=0, progress=False)
    tiny = {"train.epochs": "2", "cnn.channels": "[4,8]", "train.channels_last": "false",
            "train.monitor": "ua"}
    sets = [arg for key, value in tiny.items() for arg in ("-S", f"{key}={value}")]
    common = ["--data", str(corpus), "--systems", "cnn", "--subsets", "strong", "--folds", "1",
              "--keep-models", str(kept), "--features-cache", str(cache)]
    head_out = tmp_path / "head.json"
    assert accuracy.main([*common, *sets, "--out", str(head_out)]) == 0
    assert accuracy.main([*common, *sets, "-S", "cnn.channels=[2,4]", "--tag", "small"]) == 0
    head, model = kept / "cnn" / "seed0" / "cnn-strong", kept / "cnn+small" / "seed0" / "cnn-strong"
    out = tmp_path / "fused.json"
    assert fusion_benchmark.main(["--data", str(corpus), "--head", str(head), "--model",
                                  str(model), "--folds", "1", "--weights", "0", "0.5", "1",
                                  "--features-cache", str(cache), "--out", str(out),
                                  *sets[:6]]) == 0
    saved = json.loads(out.read_text())["cnn+cnn/strong/seed0"]
    assert saved["head_weight"]["1"] in (0.0, 0.5, 1.0)
    assert set(saved["weights_validation_ua"]) == {"0", "0.5", "1"}
    assert saved["weights_test_ua"]["1"] == json.loads(head_out.read_text())[
        "cnn/strong/seed0"]["ua"]
    assert saved["protocol"] == "utterance-only" and "validation_ua" in saved
    assert "| 0.5 |" in capsys.readouterr().out
    # a fixed weight on every fold (a default), the candidates still scored beside it
    assert fusion_benchmark.main(["--data", str(corpus), "--head", str(head), "--model",
                                  str(model), "--folds", "1", "--weights", "0", "0.5", "1",
                                  "--head-weight", "1", "--tag", "w1", "--features-cache",
                                  str(cache), "--out", str(out), *sets[:6]]) == 0
    fixed = json.loads(out.read_text())["cnn+cnn+w1/strong/seed0"]
    assert fixed["head_weight"] == {"1": 1.0} and fixed["ua"] == saved["weights_test_ua"]["1"]
    # monitor: none (the validation actors trained them): the fixed weight, no choice
    from speech_emotion import checkpoint

    none = kept / "none" / "seed0" / "cnn-strong"
    none.mkdir(parents=True)
    checkpoint.save(none / "fold1.pt", {**checkpoint.load(head / "fold1.pt"), "monitor": "none"})
    assert fusion_benchmark.main(["--data", str(corpus), "--head", str(none), "--model",
                                  str(none), "--folds", "1", "--head-weight", "0.3",
                                  "--features-cache", str(cache), "--out", str(out),
                                  *sets[:6]]) == 0
    saved = json.loads(out.read_text())["cnn+cnn/strong/seed0"]
    assert saved["head_weight"] == 0.3 and "validation_ua" not in saved
