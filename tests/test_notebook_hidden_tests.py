"""The notebook's test cells pass the reference solution and fail realistic student bugs.

Each mutation edits one line of a solution cell of the source notebook (the reference's code),
runs the notebook's given and solution cells in a plain namespace (no kernel, no training), then
the part's test cell, which must raise an AssertionError. Public tests alone are not required to
catch every bug; public + hidden tests together are.
"""

from __future__ import annotations

import shutil
import sys
import types
import warnings
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "source" / "transformer_lab" / "transformer_lab.ipynb"
pytestmark = pytest.mark.slow  # runs most of the notebook (no training): ~1 minute on 2 busy cores

SKIP = {"run_reverse", "run_anomaly", "test_train_reverse", "test_train_anomaly",  # training: see the slow tests
        "submission"}  # writes submission.zip into the working directory

#: part -> list of (description, old line fragment, new line fragment) applied to impl_<part>
MUTATIONS = {
    "scaled_dot_product": [
        ("no 1/sqrt(d_k)", "torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d_k)", "torch.matmul(q, k.transpose(-2, -1))"),
        ("softmax over the queries", "F.softmax(attn_logits, dim=-1)", "F.softmax(attn_logits, dim=-2)"),
        ("mask ignored", "attn_logits = attn_logits.masked_fill(mask == 0, mask_fill_value(attn_logits.dtype))", "pass"),
        ("-9e15 fill", "mask_fill_value(attn_logits.dtype))", "-9e15)"),
    ],
    "multihead_attention": [
        ("q/k/v split across heads", "q, k, v = qkv.transpose(1, 2).chunk(3, dim=-1)",
         "q, k, v = self.qkv_proj(x).chunk(3, dim=-1); q, k, v = (t.reshape(B, T, self.num_heads, self.head_dim).transpose(1, 2) for t in (q, k, v))"),
        ("no output projection", "o = self.o_proj(values)", "o = values"),
        ("mask dropped", "values, attention = scaled_dot_product(q, k, v, mask=mask)", "values, attention = scaled_dot_product(q, k, v)"),
    ],
    "encoder_block": [
        ("lost residual", "x = self.norm1(x + self.dropout(self.self_attn(x, mask=mask)))", "x = self.norm1(self.dropout(self.self_attn(x, mask=mask)))"),
        ("mask not passed", "self.self_attn(x, mask=mask)", "self.self_attn(x)"),
        ("pre-LN attention", "x = self.norm1(x + self.dropout(self.self_attn(x, mask=mask)))",
         "x = x + self.dropout(self.self_attn(self.norm1(x), mask=mask))"),
        ("MLP skipped", "x = self.norm2(x + self.dropout(self.linear_net(x)))", "x = self.norm2(x)"),
        ("lost MLP residual", "x = self.norm2(x + self.dropout(self.linear_net(x)))",
         "x = self.norm2(self.dropout(self.linear_net(x)))"),
    ],
    "positional_encoding": [
        ("sin and cos swapped", "pe[:, 0::2] = torch.sin(position * div_term)", "pe[:, 0::2] = torch.cos(position * div_term)"),
        ("sum thrown away", "return x + self.pe[:, : x.size(1)].to(x.dtype)", "x + self.pe[:, : x.size(1)]; return x"),
        ("wrong base", "-math.log(10000.0)", "-math.log(1000.0)"),
    ],
    "warmup_factor": [
        ("no warm-up", "factor *= step / warmup", "pass"),
        ("linear decay", "factor = 0.5 * (1 + math.cos(math.pi * step / max_iters))", "factor = 1 - step / max_iters"),
    ],
    "reverse_loss": [
        ("accuracy over the wrong axis", "acc = (preds.argmax(dim=-1) == labels).float().mean()", "acc = (preds.argmax(dim=1) == labels).float().mean()"),
        ("no positional encoding", "preds = self.forward(inp_data, add_positional_encoding=True)", "preds = self.forward(inp_data, add_positional_encoding=False)"),
        ("no logging", 'self.log(f"{mode}_loss", loss)\n        self.log(f"{mode}_acc", acc)', "pass"),
    ],
    "attention_plot": [
        ("idx ignored", "maps = [m[idx].detach().float().cpu().numpy() for m in attn_maps]", "maps = [m[0].detach().float().cpu().numpy() for m in attn_maps]"),
        ("only the first head", "for col in range(num_heads):", "for col in range(1):"),
    ],
    "anomaly_loss": [
        ("positional encoding on a set", "preds = self.forward(img_sets, add_positional_encoding=False)", "preds = self.forward(img_sets, add_positional_encoding=True)"),
        ("softmax over the wrong axis", "loss = F.cross_entropy(preds, labels)", "loss = F.cross_entropy(preds.T, labels[:1].expand(preds.shape[1]) * 0)"),
    ],
    "prediction_view": [
        ("no probabilities", 'f"{i}: {100 * p[i]:.1f}%"', 'f"{i}"'),
        ("idx ignored", "maps = [m[idx].detach().float().cpu().numpy() for m in attn_maps]", "maps = [m[0].detach().float().cpu().numpy() for m in attn_maps]"),
    ],
}


def _cells():
    nb = nbformat.read(SOURCE, as_version=4)
    out = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader")
        if cell.cell_type != "code" or meta is None or meta["grade_id"] in SKIP:
            continue
        out.append((meta["grade_id"], cell.source))
    return out


_SNAPSHOTS: dict[str, dict] = {}


def _namespace() -> dict:
    # dataclasses resolve string annotations through sys.modules[cls.__module__]
    sys.modules.setdefault("__notebook__", types.ModuleType("__notebook__"))
    return {"__name__": "__notebook__"}


def _snapshots() -> dict[str, dict]:
    """Namespace right before each ``impl_<part>`` cell, from one pass over the reference notebook."""
    if not _SNAPSHOTS:
        ns = _namespace()
        for grade_id, source in _cells():
            if grade_id.startswith("impl_"):
                _SNAPSHOTS[grade_id.removeprefix("impl_")] = dict(ns)
            exec(compile(source, f"<{grade_id}>", "exec"), ns)
    return _SNAPSHOTS


def _run(upto_test: str, replace: tuple[str, str, str] | None = None, extra: str | None = None,
         public_only: bool = False):
    """Exec the cells from ``impl_<part>`` up to ``test_<part>``; return the test cell's exception.
    ``public_only``: without the test cell's hidden block (what a student's run of the release checks)."""
    part = upto_test.removeprefix("test_")
    ns = dict(_snapshots()[part])
    started = False
    for grade_id, source in _cells():
        if grade_id == f"impl_{part}":
            started = True
            if replace is not None:
                _, old, new = replace
                assert old in source, f"mutation {replace[0]!r} of {part} no longer applies: {old!r} is not in the solution"
                source = source.replace(old, new)
        if not started:
            continue
        if extra is not None and grade_id == f"impl_{part}":
            source = source + "\n\n" + extra
        if public_only and grade_id == upto_test:
            source = source.split("### BEGIN HIDDEN TESTS")[0]
        code = compile(source, f"<{grade_id}>", "exec")
        if grade_id == upto_test:
            try:
                exec(code, ns)
            except Exception as e:  # noqa: BLE001 - any failure of the test cell counts
                return e
            return None
        exec(code, ns)
    raise AssertionError(f"no cell {upto_test}")


@pytest.fixture(scope="session")
def notebook_folder(tmp_path_factory) -> Path:
    """A folder holding the notebook's given modules, as a student's notebook folder does."""
    sys.path.insert(0, str(ROOT / "autograder"))
    from lab_autograder.registry import GIVEN_FILES

    folder = tmp_path_factory.mktemp("notebook")
    for name in GIVEN_FILES:
        shutil.copy(SOURCE.with_name(name), folder / name)
    return folder


@pytest.fixture(autouse=True)
def _quiet(monkeypatch, notebook_folder):
    monkeypatch.chdir(notebook_folder)  # the first cell checks the given modules there; imports find them
    monkeypatch.syspath_prepend(str(notebook_folder))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TL_QUICK", "1")
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    warnings.filterwarnings("ignore")
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.parametrize("part", sorted(MUTATIONS))
def test_reference_passes(part):
    err = _run(f"test_{part}")
    assert err is None, f"test_{part} fails the reference: {type(err).__name__}: {err}"


@pytest.mark.parametrize("part,mutation", [(p, m) for p, ms in MUTATIONS.items() for m in ms],
                         ids=[f"{p}-{m[0]}" for p, ms in MUTATIONS.items() for m in ms])
def test_bug_is_caught(part, mutation):
    err = _run(f"test_{part}", mutation)
    assert err is not None, f"test_{part} does not catch the bug {mutation[0]!r}"
    assert isinstance(err, (AssertionError, ValueError, RuntimeError, TypeError)), f"{type(err).__name__}: {err}"
    if isinstance(err, AssertionError):
        assert str(err), "the assertion gives no message"


def test_anomaly_data_cell_reads_a_feature_file(tmp_path, monkeypatch):
    """With a features file (this package's format) the notebook uses it instead of synthetic data."""
    import torch

    gen = torch.Generator().manual_seed(0)
    splits = {}
    for name, per_class in (("train", 100), ("test", 20)):
        labels = torch.arange(10).repeat(per_class)
        splits[name] = {"features": torch.randn(len(labels), 512, generator=gen), "labels": labels,
                        "input_sha256": "0" * 64, "input_shape": [len(labels), 32, 32, 3]}
    path = tmp_path / "feats.pt"
    torch.save({"format": "transformer_lab.features/1", "model": "resnet34", "weights": "IMAGENET1K_V1",
                "feature_dim": 512, "splits": splits}, path)
    monkeypatch.setenv("TL_FEATURES", str(path))
    monkeypatch.setenv("PATH_DATASETS", str(tmp_path / "no-cifar-here"))
    ns = _namespace()
    for grade_id, source in _cells():
        if grade_id.startswith("test_"):
            continue
        exec(compile(source, f"<{grade_id}>", "exec"), ns)
        if grade_id == "anomaly_data":
            break
    assert ns["ANOMALY_SOURCE"] == "cifar"
    assert tuple(ns["train_feats"].shape) == (900, 512) and tuple(ns["val_feats"].shape) == (100, 512)
    assert tuple(ns["test_feats"].shape) == (200, 512)
    assert ns["anomaly_images"] == {"train": None, "test": None}  # no CIFAR images: figures show indices


#: part -> a correct solution written differently (mostly the tutorial's own code), run after the
#: impl cell so that it replaces the reference's function or method. All must pass.
ALTERNATIVES = {
    "scaled_dot_product": """
def scaled_dot_product(q, k, v, mask=None):
    d_k = q.size()[-1]
    attn_logits = torch.einsum("...qd,...kd->...qk", q, k) / d_k ** 0.5
    if mask is not None:
        attn_logits = attn_logits.masked_fill(mask == 0, torch.finfo(attn_logits.dtype).min)
    attention = attn_logits.softmax(-1)
    return attention @ v, attention
""",
    "multihead_attention": """
def _forward(self, x, mask=None, return_attention=False):
    batch_size, seq_length, _ = x.size()
    qkv = self.qkv_proj(x)
    qkv = qkv.reshape(batch_size, seq_length, self.num_heads, 3 * self.head_dim)
    qkv = qkv.permute(0, 2, 1, 3)  # [Batch, Head, SeqLen, Dims]
    q, k, v = qkv.chunk(3, dim=-1)
    values, attention = scaled_dot_product(q, k, v, mask=mask)
    values = values.permute(0, 2, 1, 3).reshape(batch_size, seq_length, self.embed_dim)
    o = self.o_proj(values)
    return (o, attention) if return_attention else o
MultiheadAttention.forward = _forward
""",
    "encoder_block": """
def _forward(self, x, mask=None):
    attn_out = self.self_attn(x, mask=mask)
    x = x + self.dropout(attn_out)
    x = self.norm1(x)
    linear_out = self.linear_net(x)
    x = x + self.dropout(linear_out)
    x = self.norm2(x)
    return x
EncoderBlock.forward = _forward
""",
    "positional_encoding": """
def sinusoidal_table(max_len, d_model):
    pe = torch.zeros(max_len, d_model)
    position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe
def _forward(self, x):
    x = x + self.pe[:, : x.size(1)]
    return x
PositionalEncoding.forward = _forward
""",
    "warmup_factor": """
def warmup_cosine_factor(step, warmup, max_iters):
    lr_factor = 0.5 * (1 + np.cos(np.pi * step / max_iters))
    if step <= warmup:
        lr_factor *= step * 1.0 / warmup
    return lr_factor
""",
    "reverse_loss": """
def _calculate_loss(self, batch, mode="train"):
    inp_data, labels = batch
    inp_data = F.one_hot(inp_data, num_classes=self.hparams.num_classes).float()
    preds = self.forward(inp_data, add_positional_encoding=True)
    loss = F.cross_entropy(preds.view(-1, preds.size(-1)), labels.view(-1))
    acc = (preds.argmax(dim=-1) == labels).float().mean()
    self.log(f"{mode}_loss", loss)
    self.log(f"{mode}_acc", acc)
    return loss, acc
ReversePredictor._calculate_loss = _calculate_loss
""",
    "attention_plot": """
def plot_attention_maps(input_data, attn_maps, idx=0, path=None):
    if input_data is not None:
        input_data = input_data[idx].detach().cpu().numpy()
    else:
        input_data = np.arange(attn_maps[0][idx].shape[-1])
    attn_maps = [m[idx].detach().cpu().numpy() for m in attn_maps]
    num_heads, num_layers, seq_len = attn_maps[0].shape[0], len(attn_maps), input_data.shape[0]
    fig_size = 4 if num_heads == 1 else 3
    fig, ax = plt.subplots(num_layers, num_heads, figsize=(num_heads * fig_size, num_layers * fig_size))
    if num_layers == 1:
        ax = [ax]
    if num_heads == 1:
        ax = [[a] for a in ax]
    for row in range(num_layers):
        for column in range(num_heads):
            ax[row][column].imshow(attn_maps[row][column], origin="lower", vmin=0)
            ax[row][column].set_xticks(list(range(seq_len)))
            ax[row][column].set_xticklabels(input_data.tolist())
            ax[row][column].set_yticks(list(range(seq_len)))
            ax[row][column].set_yticklabels(input_data.tolist())
            ax[row][column].set_title("Layer %i, Head %i" % (row + 1, column + 1))
    fig.subplots_adjust(hspace=0.5)
    if path is not None:
        fig.savefig(path)
    return fig
""",
    "anomaly_loss": """
def _calculate_loss(self, batch, mode="train"):
    img_sets, _, labels = batch
    preds = self.forward(img_sets, add_positional_encoding=False)
    preds = preds.squeeze(dim=-1)  # Shape: [Batch_size, set_size]
    loss = F.cross_entropy(preds, labels)
    acc = (preds.argmax(dim=-1) == labels).float().mean()
    self.log(f"{mode}_loss", loss)
    self.log(f"{mode}_acc", acc, on_step=False, on_epoch=True)
    return loss, acc
AnomalyPredictor._calculate_loss = _calculate_loss
""",
    "prediction_view": """
def plot_anomaly_prediction(indices, probs, attn_maps, idx=0, images=None, path=None):
    p = probs[idx].detach().cpu()
    n, layers, heads = p.numel(), len(attn_maps), attn_maps[0].shape[1]
    fig = plt.figure(figsize=(12, 2 + 3 * layers))
    grid = fig.add_gridspec(1 + layers, max(n, heads))
    for i in range(n):
        ax = fig.add_subplot(grid[0, i])
        if images is not None:
            ax.imshow(images[int(indices[idx, i])])
        ax.set_title(f"{p[i]:.2%}")
        ax.axis("off")
    for l in range(layers):
        for h in range(heads):
            ax = fig.add_subplot(grid[1 + l, h])
            ax.imshow(attn_maps[l][idx, h].detach().cpu().numpy(), origin="lower")
            ax.set_title(f"Layer {l + 1}, Head {h + 1}")
    fig.suptitle(f"prediction: {int(p.argmax())}")
    if path is not None:
        fig.savefig(path)
    return fig
""",
}


@pytest.mark.parametrize("part", sorted(ALTERNATIVES))
def test_correct_solution_written_differently_passes(part):
    err = _run(f"test_{part}", extra=ALTERNATIVES[part])
    assert err is None, f"test_{part} rejects a correct solution: {type(err).__name__}: {err}"


#: bugs the release's own (public) checks must catch: a student should not learn of them from a grade
PUBLIC_CATCHES = {"encoder_block": ["lost residual", "lost MLP residual", "pre-LN attention", "MLP skipped"]}


@pytest.mark.parametrize("part,name", [(p, n) for p, ns in PUBLIC_CATCHES.items() for n in ns])
def test_public_checks_catch_what_layernorm_hides(part, name):
    mutation = next(m for m in MUTATIONS[part] if m[0] == name)
    err = _run(f"test_{part}", mutation, public_only=True)
    assert isinstance(err, AssertionError), f"the public checks of {part} miss {name!r}"
    assert _run(f"test_{part}", public_only=True) is None
