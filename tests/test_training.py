"""The training loop: it learns, it is deterministic, and checkpoints round-trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from speech_emotion import augment, checkpoint, inference, models, normalisation, params, training

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
FEATURE_PARAMS = {"kind": "logmel", "n_mels": 16}
TINY = {
    "train.epochs": 5, "train.batch_size": 16, "train.patience": 10, "train.device": "cpu",
    "train.optim.lr": 0.01,
    "cnn.channels": [4, 8], "cnn_transformer.channels": [4, 8],
    "cnn_transformer.kernel_sizes": [3, 5], "cnn_transformer.d_model": 16,
    "cnn_transformer.n_heads": 2, "cnn_transformer.n_layers": 1,
    "cnn_transformer.dim_feedforward": 32,
}


def tiny_params(**overrides):
    return params.load(PARAMS, overrides={**TINY, **overrides})


def separable(n: int, n_classes: int = 4, bins: int = 16, frames: int = 40, seed: int = 0):
    """dB-like features where class c is loud in bins [3c, 3c + 3): learnable in a few steps."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    x = rng.normal(-40.0, 4.0, size=(n, bins, frames)).astype(np.float32)
    for c in range(n_classes):
        x[y == c, 3 * c:3 * c + 3] += 20.0
    return x, y.astype(np.int64)


def fold_data(n_train=96, n_val=32):
    """Training rows of three actors, validation rows of a fourth (train.speaker_norm)."""
    x, y = separable(n_train)
    xv, yv = separable(n_val, seed=1)
    return training.FoldData(x, y, xv, yv, np.arange(n_train) % 3 + 1, np.full(n_val, 4))


LABELS = ["neutral", "calm", "happy", "sad"]


@pytest.mark.parametrize("name", ["cnn", "cnn_transformer"])
def test_a_tiny_run_drives_the_loss_down(name):
    p = tiny_params()
    result = training.train_fold(name, p.section(name), p.train, fold_data(), LABELS, seed=0,
                                 feature_params=FEATURE_PARAMS, progress=False)
    losses = [h["train_loss"] for h in result["history"]]
    assert losses[-1] < 0.7 * losses[0]
    assert result["best"]["ua"] >= 0.9       # held-out rows of the same easy task
    assert 1 <= result["best_epoch"] <= 5


def test_same_seed_gives_identical_weights_and_another_seed_does_not():
    p = tiny_params(**{"train.epochs": 2, "train.augment.mixup_alpha": 0.2})
    run = lambda seed: training.train_fold("cnn", p.cnn, p.train, fold_data(), LABELS,  # noqa: E731
                                           seed=seed, feature_params=FEATURE_PARAMS,
                                           progress=False)["state_dict"]
    a, b, c = run(0), run(0), run(1)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("name", ["cnn", "cnn_transformer"])
def test_channels_last_trains_in_that_layout_deterministically(name):
    """train.channels_last: the conv weights are trained (and kept) channels-last, the run
    still learns, and the same seed still gives the same weights."""
    p = tiny_params(**{"train.channels_last": True})
    run = lambda: training.train_fold(name, p.section(name), p.train, fold_data(), LABELS,  # noqa: E731
                                      seed=0, feature_params=FEATURE_PARAMS, progress=False)
    a, b = run(), run()
    wide = [k for k, v in a["state_dict"].items() if v.ndim == 4 and v.shape[1] > 1]  # 2nd block on
    assert wide and all(a["state_dict"][k].is_contiguous(memory_format=torch.channels_last)
                        and not a["state_dict"][k].is_contiguous() for k in wide)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    losses = [h["train_loss"] for h in a["history"]]
    assert losses[-1] < 0.7 * losses[0] and a["best"]["ua"] >= 0.9
    row_major = tiny_params(**{"train.epochs": 1, "train.channels_last": False})
    plain = training.train_fold(name, p.section(name), row_major.train, fold_data(), LABELS,
                                seed=0, feature_params=FEATURE_PARAMS, progress=False)
    assert all(plain["state_dict"][k].is_contiguous() for k in wide)


def test_the_transformer_branch_learns_at_its_own_rate():
    """cnn_transformer.transformer_lr_scale: 0 freezes the Transformer branch while the conv
    branches learn; 0.5 gives its optimiser group half the rate."""
    p = tiny_params(**{"train.epochs": 1, "cnn_transformer.transformer_lr_scale": 0.0})
    torch.manual_seed(0)                                  # train_fold's initial weights
    initial = models.build("cnn_transformer", p.cnn_transformer, 16, len(LABELS)).state_dict()
    trained = training.train_fold("cnn_transformer", p.cnn_transformer, p.train, fold_data(),
                                  LABELS, seed=0, feature_params=FEATURE_PARAMS,
                                  progress=False)["state_dict"]
    branch = [k for k in initial if k.startswith("transformer.")]
    convs = [k for k in initial if k.startswith("conv_branches.") and k.endswith("weight")]
    assert branch and convs
    assert all(torch.equal(initial[k], trained[k]) for k in branch)
    assert not any(torch.equal(initial[k], trained[k]) for k in convs)

    half = tiny_params(**{"cnn_transformer.transformer_lr_scale": 0.5})
    model = models.build("cnn_transformer", half.cnn_transformer, 16, len(LABELS))
    groups = training.make_optimizer(model, half.train).param_groups
    assert [g["lr"] for g in groups] == [0.01, 0.005]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_early_stopping_keeps_the_best_epoch():
    p = tiny_params(**{"train.epochs": 30, "train.patience": 1, "train.monitor": "loss",
                       "train.optim.lr": 0.3})
    result = training.train_fold("cnn", p.cnn, p.train, fold_data(), LABELS, seed=0,
                                 feature_params=FEATURE_PARAMS, progress=False)
    history = result["history"]
    assert len(history) < 30                      # it stopped
    best = min(history, key=lambda h: h["val_loss"])
    assert result["best_epoch"] == best["epoch"]
    assert len(history) == result["best_epoch"] + 1   # one epoch of patience after the best


def test_without_monitoring_every_epoch_runs_and_the_last_is_kept():
    p = tiny_params(**{"train.epochs": 4, "train.patience": 1, "train.monitor": "none",
                       "train.optim.lr": 0.3})
    data = fold_data()
    result = training.train_fold("cnn", p.cnn, p.train, data, LABELS, seed=0,
                                 feature_params=FEATURE_PARAMS, progress=False)
    assert [h["epoch"] for h in result["history"]] == [1, 2, 3, 4]   # patience ignored
    assert result["best_epoch"] == 4
    # the kept weights are the last epoch's: the same run stopped at epoch 4 by the budget
    last = training.train_fold("cnn", p.cnn, p.train, training.FoldData(
        data.x_train, data.y_train, data.x_val[:0], data.y_val[:0], data.speakers_train,
        data.speakers_val[:0]), LABELS, seed=0, feature_params=FEATURE_PARAMS, progress=False)
    assert all(torch.equal(result["state_dict"][k], last["state_dict"][k])
               for k in result["state_dict"])
    assert "val_ua" not in last["history"][0] and last["best"] == {}
    # a monitor that selects cannot run without validation rows
    p = tiny_params(**{"train.monitor": "ua"})
    with pytest.raises(ValueError, match="needs validation rows"):
        training.train_fold("cnn", p.cnn, p.train, training.FoldData(
            data.x_train, data.y_train, data.x_val[:0], data.y_val[:0], data.speakers_train,
            data.speakers_val[:0]), LABELS, seed=0, feature_params=FEATURE_PARAMS,
            progress=False)


def test_normalisation_is_per_bin_over_the_training_rows():
    x, _ = separable(64)
    stats = normalisation.fit_normalisation(x)
    z = normalisation.normalise(torch.from_numpy(x), stats)
    assert stats["mean"].shape == (16,)
    assert torch.allclose(z.mean(dim=(0, 2)), torch.zeros(16), atol=1e-4)
    assert torch.allclose(z.std(dim=(0, 2)), torch.ones(16), atol=1e-3)


def test_noise_lands_near_the_asked_snr():
    torch.manual_seed(0)
    db = torch.full((2, 16, 100), -20.0)                      # power 0.01 everywhere
    noisy = augment.add_noise(db, torch.tensor([10.0, 0.0]))
    added = torch.pow(10.0, noisy / 10.0) - 0.01              # the noise power
    snr = 10 * torch.log10(0.01 / added.mean(dim=(1, 2)))
    assert torch.allclose(snr, torch.tensor([10.0, 0.0]), atol=0.3)
    assert (noisy >= db).all()                                # noise only adds power


def test_time_shift_rolls_each_utterance_by_its_own_offset():
    torch.manual_seed(0)
    x = torch.arange(20.0).repeat(8, 3, 1)                    # (8, 3, 20)
    shifted = augment.time_shift(x, 5)
    offsets = {int((shifted[i, 0, 0] - x[i, 0, 0]) % 20) for i in range(8)}
    assert len(offsets) > 1
    for i in range(8):
        assert sorted(shifted[i, 0].tolist()) == list(range(20))  # a roll, nothing lost


def test_shift_frames_moves_in_time_and_holds_the_edges():
    x = torch.arange(6.0).repeat(2, 3, 1)                               # (2, 3, 6)
    assert inference.shift_frames(x, 2)[0, 0].tolist() == [0.0, 0.0, 0.0, 1.0, 2.0, 3.0]
    assert inference.shift_frames(x, -2)[1, 2].tolist() == [2.0, 3.0, 4.0, 5.0, 5.0, 5.0]
    assert torch.equal(inference.shift_frames(x, 0), x)


def test_predict_proba_averages_the_shifted_copies(tmp_path):
    """evaluate.shifts: the mean of the probabilities of each shifted copy scored alone;
    [0] is the plain score; no shift, or one as long as the clip, is refused."""
    p = tiny_params()
    x, _ = separable(6)
    model = models.build("cnn", p.cnn, x.shape[1], len(LABELS)).eval()
    checkpoint = {"normalisation": normalisation.fit_normalisation(x)}
    plain = inference.predict_proba(model, checkpoint, x)
    assert np.array_equal(inference.predict_proba(model, checkpoint, x, shifts=[0]), plain)
    alone = [inference.predict_proba(model, checkpoint,
                                    inference.shift_frames(torch.from_numpy(x), s).numpy())
             for s in (-3, 0, 5)]
    averaged = inference.predict_proba(model, checkpoint, x, shifts=[-3, 0, 5])
    np.testing.assert_allclose(averaged, np.mean(alone, axis=0), atol=1e-6)
    assert not np.allclose(averaged, plain, atol=1e-4)
    assert np.allclose(averaged.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="at least one shift"):
        inference.predict_proba(model, checkpoint, x, shifts=[])
    with pytest.raises(ValueError,
                       match=r"^evaluate\.shifts \[0, 40\]: .* shorter than the clip's 40 frames"):
        inference.predict_proba(model, checkpoint, x, shifts=[0, 40])


def test_stretch_scales_each_utterance_along_one_axis():
    bins = torch.arange(10.0)[None, :, None].repeat(2, 1, 3)            # (2, 10, 3)
    out = augment.stretch(bins, torch.tensor([1.0, 2.0]), 1, centre=False)
    assert torch.equal(out[0], bins[0])                                 # factor 1: unchanged
    assert torch.allclose(out[1, :, 0], torch.arange(10.0) / 2)        # twice as wide
    assert torch.equal(out[:, :, 0], out[:, :, 2])                      # every frame alike
    frames = torch.arange(9.0)[None, None, :].repeat(1, 2, 1)           # (1, 2, 9)
    fast = augment.stretch(frames, torch.tensor([0.5]), 2, centre=True)     # half as long
    assert fast[0, 0, 4] == 4.0                                         # the middle stays
    assert fast[0, 0].tolist() == [0.0, 0.0, 0.0, 2.0, 4.0, 6.0, 8.0, 8.0, 8.0]  # edges held


def test_warp_changes_every_utterance_differently():
    p = tiny_params(**{"train.augment.noise.enabled": False,
                       "train.augment.time_shift.enabled": False,
                       "train.augment.spec_augment.enabled": False,
                       "train.augment.warp.enabled": True})
    x, _ = separable(8)
    augmenter = augment.Augment(p.train.augment, normalisation.fit_normalisation(x))
    torch.manual_seed(0)
    out = augmenter(torch.from_numpy(x))
    plain = normalisation.normalise(torch.from_numpy(x), augmenter.normalisation)
    assert out.shape == plain.shape and torch.isfinite(out).all()
    differences = (out - plain).abs().mean(dim=(1, 2))
    assert (differences > 0).all() and len(set(differences.tolist())) == 8


def augment_and_plain(spec_augment: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment's output on 8 utterances (noise and time shift off) and the plain normalised
    features."""
    p = tiny_params(**{"train.augment.noise.enabled": False,
                       "train.augment.time_shift.enabled": False,
                       "train.augment.spec_augment.enabled": spec_augment})
    x, _ = separable(8)
    augmenter = augment.Augment(p.train.augment, normalisation.fit_normalisation(x))
    torch.manual_seed(0)
    return augmenter(torch.from_numpy(x)), normalisation.normalise(torch.from_numpy(x),
                                                                   augmenter.normalisation)


def test_spec_augment_masks_with_the_mean_after_normalising():
    out, plain = augment_and_plain(spec_augment=True)
    changed = out != plain
    assert changed.any()
    assert (out[changed] == 0).all()


def test_augmentation_switched_off_only_normalises():
    out, plain = augment_and_plain(spec_augment=False)
    assert torch.equal(out, plain)


def test_noise_on_mfcc_features_is_refused():
    p = tiny_params(**{"train.augment.noise.enabled": True})
    with pytest.raises(ValueError, match="augment.noise needs features.kind = logmel"):
        training.train_fold("cnn", p.cnn, p.train, fold_data(), LABELS, seed=0,
                            feature_params={"kind": "mfcc"}, progress=False)


def test_class_weights_balance_the_classes():
    w = training.class_weights(np.array([0, 0, 0, 1]), 3)
    assert w.tolist() == pytest.approx([4 / 6, 2.0, 0.0])


@pytest.mark.parametrize("name", ["cnn", "cnn_transformer"])
def test_checkpoint_round_trip_scores_like_the_trained_model(tmp_path, name):
    p = tiny_params(**{"train.epochs": 1})
    data = fold_data()
    result = training.train_fold(name, p.section(name), p.train, data, LABELS, seed=0,
                                 feature_params=FEATURE_PARAMS, progress=False)
    saved = {"state_dict": result["state_dict"], "model": name,
             "config": __import__("dataclasses").asdict(p.section(name)), "labels": LABELS,
             "normalisation": result["normalisation"], "feature_params": FEATURE_PARAMS,
             "fold": {"number": 1, "test_actors": [1], "validation_actors": [2, 3],
                      "train_actors": [4, 5]},
             "subset": "all", "best_epoch": result["best_epoch"]}
    path = tmp_path / "fold1.pt"
    checkpoint.save(path, saved)
    model, loaded = checkpoint.load_model(path)
    assert loaded["labels"] == LABELS and loaded["fold"] == saved["fold"]
    assert not model.training
    proba = inference.predict_proba(model, loaded, data.x_val)
    assert proba.shape == (len(data.x_val), len(LABELS))
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    # the same numbers as the in-memory model with the same weights
    from speech_emotion import models

    fresh = models.build(name, p.section(name), 16, len(LABELS))
    fresh.load_state_dict(result["state_dict"])
    assert np.allclose(proba, inference.predict_proba(fresh, saved, data.x_val), atol=1e-6)
    # saved twice, byte-identical
    checkpoint.save(tmp_path / "again.pt", saved)
    assert (tmp_path / "again.pt").read_bytes() == path.read_bytes()


def test_a_broken_checkpoint_is_named(tmp_path):
    bad = tmp_path / "fold1.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match="fold1.pt: not a loadable"):
        checkpoint.load(bad)
    torch.save({"model": "cnn"}, bad)
    with pytest.raises(checkpoint.CheckpointError, match="lacks state_dict"):
        checkpoint.load(bad)


@pytest.mark.parametrize("how", ["level", "bins"])
def test_utterance_norm_uses_only_the_utterance_itself(how):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 5, 30)).astype(np.float32)
    stats = normalisation.fit_normalisation(x, how)
    louder = x.copy()
    louder[0] += 12.0                              # the same utterance, 12 dB louder
    z = normalisation.normalise(torch.from_numpy(x), stats)
    z_loud = normalisation.normalise(torch.from_numpy(louder), stats)
    assert torch.allclose(z, z_loud, atol=1e-5)    # its own level is taken away...
    alone = normalisation.normalise(torch.from_numpy(x[:1]), stats)
    assert torch.allclose(alone, z[:1], atol=1e-6)  # ...and no other utterance is needed
    if how == "bins":
        assert torch.allclose(z.mean(dim=2), torch.zeros(6, 5), atol=1e-5)
    plain = normalisation.fit_normalisation(x)
    assert not torch.allclose(normalisation.normalise(torch.from_numpy(louder), plain)[0], z[0])


def test_an_ensemble_checkpoint_scores_the_mean_of_its_members(tmp_path):
    p = tiny_params(**{"train.epochs": 1})
    data = fold_data()
    members = [training.train_fold("cnn", p.cnn, p.train, data, LABELS, seed=seed,
                                   feature_params=FEATURE_PARAMS, progress=False)
               for seed in (0, 1)]
    base = {"model": "cnn", "config": __import__("dataclasses").asdict(p.cnn), "labels": LABELS,
            "normalisation": members[0]["normalisation"], "feature_params": FEATURE_PARAMS,
            "fold": {"number": 1, "test_actors": [1], "validation_actors": [2, 3],
                     "train_actors": [4, 5]}, "subset": "all"}
    singles = []
    for i, member in enumerate(members):
        checkpoint.save(tmp_path / f"single{i}.pt", {**base, "state_dict": member["state_dict"],
                                                     "best_epoch": member["best_epoch"]})
        model, loaded = checkpoint.load_model(tmp_path / f"single{i}.pt")
        assert not isinstance(model, models.ensemble.SeedEnsemble)
        singles.append(inference.predict_proba(model, loaded, data.x_val))
    assert not np.allclose(singles[0], singles[1], atol=1e-3)       # two different models
    checkpoint.save(tmp_path / "fold1.pt", {**base,
                                            "state_dict": [m["state_dict"] for m in members],
                                            "best_epoch": [m["best_epoch"] for m in members]})
    model, loaded = checkpoint.load_model(tmp_path / "fold1.pt")
    assert isinstance(model, models.ensemble.SeedEnsemble) and len(model.members) == 2
    assert not model.training and not any(m.training for m in model.members)
    proba = inference.predict_proba(model, loaded, data.x_val)
    assert np.allclose(proba, (singles[0] + singles[1]) / 2, atol=1e-6)
    # a member whose weights do not fit the config is refused with the file's name
    broken = [members[0]["state_dict"],
              {k: v[:1] if v.ndim else v for k, v in members[1]["state_dict"].items()}]
    checkpoint.save(tmp_path / "fold2.pt", {**base, "state_dict": broken, "best_epoch": [1, 1]})
    with pytest.raises(checkpoint.CheckpointError, match="fold2.pt: cannot rebuild the model"):
        checkpoint.load_model(tmp_path / "fold2.pt")



def test_folds_side_by_side_train_the_same_weights_as_one_after_another():
    """train_jobs in two forked processes: each model byte for byte as in this process, and
    on_epoch sees the same records in job order."""
    p = tiny_params(**{"train.epochs": 3, "train.patience": 1})
    jobs = [training.Job(fold=None, member=m, run=f"fold1/member{m + 1}", data=fold_data(),
                         seed=1000 * m + 1) for m in range(3)]

    def run(workers):
        seen, said = [], []
        results = list(training.train_jobs(
            "cnn", p.cnn, dataclasses.replace(p.train, workers=workers), jobs, LABELS,
            FEATURE_PARAMS, on_epoch=lambda run, r: seen.append((run, r["epoch"])),
            progress=False, log=lambda message, **k: said.append(message)))
        assert bool(said) == (workers > 1) and all("3 models in 2 processes" in m for m in said)
        return results, seen

    two = dataclasses.replace(p.train, workers=2)
    assert training.job_workers(two, len(jobs)) == 2
    assert training.job_workers(two, 1) == 1                 # a single job: in this process
    serial, serial_seen = run(1)
    parallel, parallel_seen = run(2)
    assert parallel_seen == serial_seen and len(serial_seen) >= 3
    for a, b in zip(serial, parallel, strict=True):
        assert a["best_epoch"] == b["best_epoch"]
        assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
        assert a["state_dict"].keys() == b["state_dict"].keys()
        for key in a["state_dict"]:
            assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    first = next(iter(serial[0]["state_dict"]))               # other seeds, other weights
    assert not torch.equal(serial[0]["state_dict"][first], serial[1]["state_dict"][first])
