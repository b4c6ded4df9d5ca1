"""TransformerPredictor/ReversePredictor: the tutorial's state-dict layout, checkpoint loading and refusals."""

import os

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

import tutorial6
from transformer_lab import CheckpointError, ReversePredictor, TransformerPredictor

RECIPE = dict(input_dim=10, model_dim=32, num_classes=10, num_heads=1, num_layers=1, lr=5e-4, warmup=50,
              max_iters=3900, dropout=0.0, input_dropout=0.0)

# Read off the tutorial's code for the reverse recipe: every key and shape of its state dict.
TUTORIAL_KEYS = {
    "input_net.1.weight": (32, 10), "input_net.1.bias": (32,),
    "transformer.layers.0.self_attn.qkv_proj.weight": (96, 32), "transformer.layers.0.self_attn.qkv_proj.bias": (96,),
    "transformer.layers.0.self_attn.o_proj.weight": (32, 32), "transformer.layers.0.self_attn.o_proj.bias": (32,),
    "transformer.layers.0.linear_net.0.weight": (64, 32), "transformer.layers.0.linear_net.0.bias": (64,),
    "transformer.layers.0.linear_net.3.weight": (32, 64), "transformer.layers.0.linear_net.3.bias": (32,),
    "transformer.layers.0.norm1.weight": (32,), "transformer.layers.0.norm1.bias": (32,),
    "transformer.layers.0.norm2.weight": (32,), "transformer.layers.0.norm2.bias": (32,),
    "output_net.0.weight": (32, 32), "output_net.0.bias": (32,),
    "output_net.1.weight": (32,), "output_net.1.bias": (32,),
    "output_net.4.weight": (10, 32), "output_net.4.bias": (10,),
}


def test_state_dict_keys_and_shapes_are_the_tutorials():
    sd = ReversePredictor(**RECIPE).state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == TUTORIAL_KEYS
    tut = tutorial6.ReversePredictor(**RECIPE).state_dict()
    assert {k: tuple(v.shape) for k, v in tut.items()} == TUTORIAL_KEYS


def _tutorial_model():
    torch.manual_seed(7)
    tut = tutorial6.ReversePredictor(**RECIPE)
    with torch.no_grad():  # make every parameter non-trivial (LayerNorm starts at 1/0)
        for p in tut.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return tut.eval()


def _assert_same_outputs(ours, tut):
    tokens = torch.randint(10, (4, 16), generator=torch.Generator().manual_seed(0))
    onehot = F.one_hot(tokens, 10).float()
    ours.eval()
    with torch.no_grad():
        expected = tut(onehot)
        torch.testing.assert_close(ours(onehot), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours(tokens), expected, atol=1e-5, rtol=1e-5)  # embedding path
    for a, b in zip(ours.get_attention_maps(onehot), tut.get_attention_maps(onehot)):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_loads_a_tutorial_format_checkpoint_strictly(tmp_path):
    # What the tutorial's ReverseTask.ckpt holds: Lightning 1.0.2 keys, its hyper-parameter names.
    tut = _tutorial_model()
    path = tmp_path / "ReverseTask.ckpt"
    torch.save({"epoch": 9, "global_step": 3900, "pytorch-lightning_version": "1.0.2",
                "state_dict": tut.state_dict(), "hparams_name": "kwargs", "hyper_parameters": dict(RECIPE),
                "callbacks": {}, "optimizer_states": [], "lr_schedulers": []}, path)
    ours = ReversePredictor.load_from_checkpoint(path)
    assert dict(ours.hparams) == RECIPE
    _assert_same_outputs(ours, tut)


def test_loads_a_checkpoint_saved_by_the_tutorials_trainer(tmp_path):
    tut = _tutorial_model()
    trainer = pl.Trainer(max_epochs=0, logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(tut)
    trainer.save_checkpoint(tmp_path / "tut.ckpt", weights_only=True)
    _assert_same_outputs(ReversePredictor.load_from_checkpoint(tmp_path / "tut.ckpt"), tut)


def test_own_checkpoint_round_trip_records_the_task(tmp_path):
    model = ReversePredictor(**RECIPE)
    trainer = pl.Trainer(max_epochs=0, logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "r.ckpt", weights_only=True)
    ckpt = torch.load(tmp_path / "r.ckpt", weights_only=True)
    assert ckpt["transformer_lab_task"] == "reverse"
    loaded = ReversePredictor.load_from_checkpoint(tmp_path / "r.ckpt")
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)


def test_refuses_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        ReversePredictor.load_from_checkpoint(tmp_path / "nope.ckpt")
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt or not a PyTorch file"):
        ReversePredictor.load_from_checkpoint(tmp_path / "bad.ckpt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="needs 'state_dict' and 'hyper_parameters'"):
        ReversePredictor.load_from_checkpoint(tmp_path / "other.ckpt")


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['TL_MARKER']}",))


def test_refuses_a_pickle_that_would_run_code(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("TL_MARKER", str(marker))
    torch.save({"state_dict": {}, "hyper_parameters": _RunsCode()}, tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match="unsafe or foreign pickle"):
        ReversePredictor.load_from_checkpoint(tmp_path / "evil.ckpt")
    assert not marker.exists()


def test_refuses_a_checkpoint_of_the_other_task(tmp_path):
    anomaly_hp = dict(RECIPE, input_dim=512, model_dim=32, num_classes=1)
    model = TransformerPredictor(**anomaly_hp)
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": anomaly_hp}, tmp_path / "a.ckpt")
    with pytest.raises(CheckpointError, match="AnomalyPredictor"):
        ReversePredictor.load_from_checkpoint(tmp_path / "a.ckpt")
    torch.save({"state_dict": {}, "hyper_parameters": RECIPE, "transformer_lab_task": "anomaly"}, tmp_path / "b.ckpt")
    with pytest.raises(CheckpointError, match="saved by the 'anomaly' task"):
        ReversePredictor.load_from_checkpoint(tmp_path / "b.ckpt")


def test_state_dict_mismatch_is_reported(tmp_path):
    sd = ReversePredictor(**RECIPE).state_dict()
    sd.pop("output_net.4.bias")
    torch.save({"state_dict": sd, "hyper_parameters": RECIPE}, tmp_path / "m.ckpt")
    with pytest.raises(CheckpointError, match="does not fit ReversePredictor"):
        ReversePredictor.load_from_checkpoint(tmp_path / "m.ckpt")


def test_predictor_input_errors():
    model = ReversePredictor(**RECIPE)
    with pytest.raises(ValueError, match=r"'x'.*\[Batch, SeqLen, 10\].*\[2, 16, 7\]"):
        model(torch.randn(2, 16, 7))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 10\)"):
        model(torch.full((2, 16), 12))
    with pytest.raises(ValueError, match=r"\[Batch, SeqLen\] of token ids"):
        model(torch.zeros(2, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible by num_heads"):
        ReversePredictor(**dict(RECIPE, num_heads=3))
    with pytest.raises(NotImplementedError, match="template"):
        TransformerPredictor(**RECIPE).training_step(None, 0)


def test_one_hot_and_token_inputs_agree_in_training_mode_with_input_dropout():
    torch.manual_seed(0)
    model = ReversePredictor(**dict(RECIPE, input_dropout=0.0)).train()
    tokens = torch.randint(10, (3, 16))
    torch.testing.assert_close(model(tokens), model(F.one_hot(tokens, 10).float()), atol=1e-5, rtol=1e-5)
