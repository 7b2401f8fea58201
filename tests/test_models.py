"""The classifiers: shapes for any clip length, the registry, config validation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from speech_emotion import models, params
from speech_emotion.params import FEATURE_MODELS, ParamsError

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


@pytest.fixture(scope="module")
def configs():
    p = params.load(PARAMS)
    return {name: p.section(name) for name in models.MODELS}


@pytest.mark.parametrize("name", list(FEATURE_MODELS))       # time on the last axis
@pytest.mark.parametrize("frames", [1, 37, 301, 500])
@pytest.mark.parametrize("deltas", [0, 2])
def test_logits_shape_for_any_clip_length(configs, name, frames, deltas):
    torch.manual_seed(0)
    config = dataclasses.replace(configs[name], deltas=deltas)
    model = models.build(name, config, n_features=64, n_classes=7).eval()
    logits = model(torch.randn(3, 64, frames))
    assert logits.shape == (3, 7)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", list(models.MODELS))
def test_build_accepts_the_checkpoint_dict_form(configs, name):
    config = dataclasses.asdict(configs[name])
    torch.manual_seed(0)
    a = models.build(name, configs[name], 42, 8, n_frames=7, n_states=7)  # a head: 7 layers
    torch.manual_seed(0)
    b = models.build(name, config, 42, 8, n_frames=7, n_states=7)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    assert models.count_parameters(a) > 1000


def test_unknown_model_and_bad_config_are_named():
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        models.build("resnet", {}, 64, 8)
    with pytest.raises(ParamsError, match="missing key.*cnn.kernel_size"):
        models.build("cnn", {"channels": [4], "pool": 2, "dropout": 0.1,
                             "classifier_dropout": 0.1, "deltas": 0}, 64, 8)


def test_transformer_heads_must_divide_d_model(configs):
    with pytest.raises(ValueError, match="multiple of n_heads"):    # the config refuses it
        config = dataclasses.replace(configs["cnn_transformer"], d_model=30, n_heads=4)
        models.build("cnn_transformer", config, 64, 8)


def test_every_branch_reaches_the_logits(configs):
    """The conv branches and the Transformer branch all get gradient (none is dead)."""
    torch.manual_seed(0)
    model = models.build("cnn_transformer", configs["cnn_transformer"], 32, 5)
    model(torch.randn(4, 32, 120)).sum().backward()
    for branch in [*model.conv_branches, model.transformer]:
        grads = [p.grad for p in branch.parameters() if p.requires_grad]
        assert all(g is not None for g in grads)
        assert sum(float(g.abs().sum()) for g in grads) > 0


def test_train_models_and_subsets_are_checked():
    with pytest.raises(ParamsError, match=r"cells\.models = \['svm'\], unknown"):
        params.load(PARAMS, overrides={"cells.models": ["svm"]})


def test_branch_dropout_drops_whole_branches_never_all(configs):
    """In training each utterance loses whole branch embeddings, never every one of them;
    in evaluation nothing is dropped."""
    config = dataclasses.replace(configs["cnn_transformer"], branch_dropout=0.9)
    torch.manual_seed(0)
    model = models.build("cnn_transformer", config, 32, 5).train()
    parts = [torch.ones(200, 3), torch.ones(200, 2)]
    dropped = model.drop_branches(parts)
    for part in dropped:                               # a row is all kept or all zero
        assert bool(((part == 0).all(dim=1) | (part == 1).all(dim=1)).all())
    kept = torch.stack([part[:, 0] for part in dropped], dim=1)             # (B, 2)
    assert bool((kept.sum(dim=1) >= 1).all())          # never all branches dropped
    assert bool((kept.sum(dim=1) == 1).any())          # but branches are dropped
    model.eval()
    assert all(torch.equal(a, b) for a, b in zip(model.drop_branches(parts), parts, strict=True))
    with pytest.raises(ValueError, match="branch_dropout"):
        models.build("cnn_transformer", dataclasses.replace(config, branch_dropout=1.0), 32, 5)
