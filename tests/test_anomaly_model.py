"""AnomalyPredictor: shapes, the loss's meaning, permutation equivariance, checkpoints, figures."""

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from transformer_lab.anomaly import AnomalyConfig, AnomalyPredictor, anomaly_probabilities, equivariance_error
from transformer_lab.anomaly_plots import find_mistakes, plot_anomaly_prediction, plot_anomaly_sets, plot_mistakes
from transformer_lab.checkpoints import TASK_KEY, CheckpointError
from transformer_lab.reverse import ReversePredictor


def make_model(dim=512, **kw):
    args = dict(input_dim=dim, model_dim=32, num_classes=1, num_heads=4, num_layers=2, lr=5e-4, warmup=10,
                max_iters=100, dropout=0.1, input_dropout=0.1)
    args.update(kw)
    torch.manual_seed(0)
    return AnomalyPredictor(**args)


def sets(batch=4, size=10, dim=512, seed=0):
    return torch.randn(batch, size, dim, generator=torch.Generator().manual_seed(seed))


def save_ckpt(model, path, task):
    ckpt = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
            "pytorch-lightning_version": pl.__version__}
    if task is not None:
        ckpt[TASK_KEY] = task
    torch.save(ckpt, path)
    return path


def test_recipe_is_the_tutorials():
    cfg = AnomalyConfig()
    assert (cfg.num_layers, cfg.num_heads, cfg.model_dim, cfg.dropout, cfg.input_dropout) == (4, 4, 256, 0.1, 0.1)
    assert (cfg.lr, cfg.warmup, cfg.max_epochs, cfg.gradient_clip_val, cfg.batch_size, cfg.seed) == \
        (5e-4, 100, 100, 2.0, 64, 42)


def test_shapes_one_logit_per_element_and_attention_per_layer():
    model = make_model().eval()
    x = sets(batch=3, size=7)
    assert model(x).shape == (3, 7, 1)
    maps = model.get_attention_maps(x)
    assert len(maps) == 2 and all(m.shape == (3, 4, 7, 7) for m in maps)
    assert torch.allclose(maps[0].sum(-1), torch.ones(3, 4, 7)), "attention rows must sum to 1"
    assert anomaly_probabilities(model, x).shape == (3, 7)
    with pytest.raises(ValueError, match="'x' must have last dimension 512"):
        model(torch.zeros(3, 7, 500))


def test_num_classes_must_be_one():
    with pytest.raises(ValueError, match="num_classes must be 1"):
        make_model(num_classes=10)


@pytest.mark.filterwarnings("ignore:.*self.trainer. reference is not registered")  # no Trainer: log is a no-op
def test_loss_is_cross_entropy_over_the_set_dimension():
    model = make_model().eval()
    x = sets(batch=5)
    labels = torch.full((5,), 9)
    loss, acc = model._calculate_loss((x, None, labels), mode="val")
    logits = model(x, add_positional_encoding=False)[..., 0]  # (B, SetSize)
    # by hand: -log softmax over the 10 set elements, at the anomaly's position, averaged over sets
    by_hand = (torch.logsumexp(logits, dim=1) - logits[:, 9]).mean()
    assert torch.allclose(loss, by_hand, atol=1e-6)
    assert torch.isclose(acc, (logits.argmax(1) == 9).float().mean())


def test_untrained_model_is_permutation_equivariant():
    model = make_model()
    x = sets(batch=8)
    for seed in range(3):
        perm = torch.randperm(10, generator=torch.Generator().manual_seed(seed))
        assert equivariance_error(model, x, perm) < 1e-5
    assert model.training, "equivariance_error must restore the model's mode"


def test_equivariance_check_catches_positional_encoding():
    # Why the check can fail: a model that adds the positional encoding to the set is not
    # equivariant, and the same measure exposes it.
    model = make_model().eval()
    x, perm = sets(), torch.tensor([9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    with torch.no_grad():
        p = F.softmax(model(x, add_positional_encoding=True)[..., 0], -1)
        pp = F.softmax(model(x[:, perm], add_positional_encoding=True)[..., 0], -1)
    assert (p[:, perm] - pp).abs().max() > 1e-3
    with pytest.raises(ValueError, match="permutation"):
        equivariance_error(model, x, perm=[0, 0, 1, 2, 3, 4, 5, 6, 7, 8])


def test_checkpoint_round_trip(tmp_path):
    model = make_model().eval()
    path = save_ckpt(model, tmp_path / "anomaly.ckpt", "anomaly")
    loaded = AnomalyPredictor.load_from_checkpoint(path).eval()
    x = sets()
    assert torch.equal(model(x), loaded(x))


def test_reverse_checkpoint_is_rejected_with_a_pointer_to_reverse_predictor(tmp_path):
    rev = ReversePredictor(input_dim=10, model_dim=32, num_classes=10, num_heads=1, num_layers=1, lr=5e-4,
                           warmup=50, max_iters=100)
    # saved by this package: the task key says "reverse"
    with pytest.raises(CheckpointError, match="ReversePredictor"):
        AnomalyPredictor.load_from_checkpoint(save_ckpt(rev, tmp_path / "a.ckpt", "reverse"))
    # saved by the tutorial's code (no task key): the hyper-parameters give it away
    with pytest.raises(CheckpointError, match="num_classes=1.*ReversePredictor"):
        AnomalyPredictor.load_from_checkpoint(save_ckpt(rev, tmp_path / "b.ckpt", None))


def test_figures(tmp_path):
    model = make_model().eval()
    x = sets(batch=6)
    idx = torch.arange(60).reshape(6, 10)
    images = torch.randint(0, 256, (60, 32, 32, 3), dtype=torch.uint8)
    normalised = torch.randn(60, 3, 32, 32)
    probs = anomaly_probabilities(model, x)
    maps = model.get_attention_maps(x)
    for imgs in (images, normalised, None):
        fig = plot_anomaly_sets(idx[:3], imgs, path=tmp_path / "sets.png")
        assert isinstance(fig, Figure) and (tmp_path / "sets.png").stat().st_size > 0
    fig = plot_anomaly_prediction(idx, probs, maps, idx=2, images=images, path=tmp_path / "pred.png")
    assert isinstance(fig, Figure) and (tmp_path / "pred.png").exists()
    assert len(fig.axes) == 10 + 2 * 4, "the set's 10 images + one map per layer and head"
    assert isinstance(plot_mistakes(idx, probs, images, path=tmp_path / "m.png"), Figure)


def test_find_mistakes_lists_sets_not_predicting_the_last():
    probs = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert find_mistakes(probs).tolist() == [1, 3]
    assert find_mistakes(probs.log().unsqueeze(-1)).tolist() == [1, 3]
