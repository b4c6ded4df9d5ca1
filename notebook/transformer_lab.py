# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab: Transformers and Multi-Head Attention
#
# In this lab you build a Transformer encoder from its parts and apply it to two tasks:
#
# 1. **Sequence to sequence**: reverse a sequence of digits.
# 2. **Set anomaly detection**: find the one image in a set of ten that does not belong.
#
# The narrative follows *Tutorial 6: Transformers and Multi-Head Attention* by Phillip Lippe
# (UvA Deep Learning course, <https://uvadlc-notebooks.readthedocs.io>), licensed CC BY-SA 4.0;
# the text here is a shortened adaptation, shared under the same licence.
#
# **How this notebook works**
#
# * Cells that say `raise NotImplementedError()` are yours: replace that line with your code. Keep
#   the function names and signatures; the docstrings tell you the shapes and what to return.
# * Each part is followed by a **test cell**. Run it: every `assert` says what is wrong and hints at
#   the fix. Passing the visible tests is necessary, not sufficient: more tests run when grading.
# * Do not edit, delete, copy or change the type of the given cells and the test cells (nbgrader
#   checks this); the one exception is the settings cell. Run the notebook top to bottom before you
#   submit (*Kernel → Restart & Run All*).
# * Training runs the full recipe on a GPU and a **quick mode** on a CPU (under a minute of
#   training): see *Running this notebook* below. Grading never trains: it runs your code and loads
#   the checkpoints you submit with the notebook (*Submitting*, at the end).
#
# @@POINTS_TABLE@@

# %% [markdown]
# ## Running this notebook
#
# **On Colab.** *File → Upload notebook* and choose this file. A GPU is optional: with one
# (*Runtime → Change runtime type → T4 GPU* or better) the notebook trains the tutorial's full
# recipe, without one it trains in quick mode. The notebook comes with `lab_data.py`, given code it
# imports (loading the data): upload it too (*Files* pane, folder icon on the left, *Upload to
# session storage*); if your course publishes the release online, the first code cell fetches it
# for you, and otherwise tells you it is missing. That cell also installs PyTorch Lightning, the
# one package Colab lacks (elsewhere it does nothing). What the notebook
# writes lands in `/content` (the *Files* pane, folder icon on the left): `/content/checkpoints/`
# and `/content/data/`. Colab deletes these files when the runtime is recycled, so download your
# submission as soon as you have it, or keep the checkpoints on your Google Drive (see the settings
# cell).
#
# **On your own machine.** Python 3.11 or newer, then (in a virtual environment or a conda
# environment)
#
#     pip install "torch>=2.4" "torchvision>=0.19" "pytorch-lightning>=2.2" matplotlib ipywidgets jupyterlab
#     jupyter lab transformer_lab.ipynb
#
# Keep `lab_data.py` next to the notebook. What the notebook writes lands next to it too:
# `checkpoints/` and `data/`.
#
# **Quick mode or the full recipe.** `QUICK` in the settings cell below decides: `None` (the
# default) trains the full recipe when there is a GPU and the quick mode otherwise; `True` or
# `False` forces one. Both pass the notebook's tests; if your course grades the anomaly model on
# CIFAR-100 images (ask), train it on CIFAR-100 features (the full recipe, on a GPU). Training times:
#
# | | quick mode | full recipe (the tutorial's) |
# |---|---|---|
# | reverse task | 12 800 sequences, 4 epochs | 50 000 sequences, 10 epochs |
# | set anomaly | synthetic features, model dim 64, 2 layers, 15 epochs | CIFAR-100 through ResNet34, dim 256, 4 layers, 100 epochs |
# | 2-core CPU, idle | reverse 5 s, anomaly 24 s; the whole notebook 42 s | reverse 45 s; anomaly 26 min on the synthetic features, about 4 h on CIFAR-100's (estimated: 0.22 s a step × 70 300 steps) |
# | 2-core CPU, shared | with one other busy process per core: the whole notebook 65 s; with three per core: 149 s | about as much longer |
# | GPU | not measured (on a GPU the full recipe is the default) | reverse about 1 min, anomaly about 18 min of training on an NVIDIA H100, plus the feature extraction, once (measured by the course staff; Colab's GPUs are slower) |
#
# Measured by the course staff on a 2-core machine. On a CPU both training cells
# use one thread: on an idle machine as fast as two, and on a shared one several times faster
# (threads that wait for each other collapse when other work takes the cores).
#
# **Where the data lives.** `DATASET_PATH` (default `data/`). The full recipe reads CIFAR-100 from
# `data/cifar-100-python/` (downloaded there when the network is reachable; otherwise extract
# `cifar-100-python.tar.gz` from <https://www.cs.toronto.edu/~kriz/cifar.html> into `data/`),
# downloads the pretrained ResNet34 weights into PyTorch's cache (`~/.cache/torch`), and extracts the
# features once into `FEATURE_FILE` (default `data/cifar100_resnet34_imagenet.pt`; the tutorial reports
# 2–3 minutes on Colab's GPUs, and a 2-core CPU would take about 80 minutes, estimated from ~12 images/s).
# If your course hands out that feature file, put it there: nothing is downloaded or extracted,
# and the quick mode uses it too (ten times more sets per epoch than the synthetic data, so it
# takes longer). Without CIFAR-100 and without the feature file, the anomaly part trains on
# synthetic features.
#
# **What to submit.** Exactly these three files, laid out like this; the last cell of the notebook
# packs them into `submission.zip` (see *Submitting* there):
#
#     transformer_lab.ipynb       this notebook, after Restart & Run All, saved
#     checkpoints/reverse.ckpt    written by the reverse training cell
#     checkpoints/anomaly.ckpt    written by the anomaly training cell
#
# Nothing else: no data, no logs, no other checkpoint. Grading runs your code again without
# training: the accuracy points come from these two checkpoints.

# %%
#@cell given install
# Colab (or any fresh Python): install what this notebook needs and the machine lacks. Colab ships
# torch, torchvision and matplotlib, but not Lightning. Where everything is installed, nothing happens.
import hashlib
import importlib.util
import os
import subprocess
import sys
import urllib.request

REQUIREMENTS = {"pytorch_lightning": "pytorch-lightning>=2.2"}  # module -> pip requirement (pyproject.toml)
_missing = [req for module, req in REQUIREMENTS.items() if importlib.util.find_spec(module) is None]
if _missing:
    print("installing", *_missing)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *_missing], check=True)

# The given data code this notebook imports comes in a file beside it; check that it is there and is
# the version released with this notebook (a stale copy would fail in confusing ways later).
GIVEN_FILES = @@GIVEN_FILES@@  # file -> SHA-256
RELEASE_URL = @@RELEASE_URL@@  # where your course publishes the release folder ("": nowhere)
for _name, _sha in GIVEN_FILES.items():
    if not os.path.isfile(_name) and RELEASE_URL and not os.environ.get("NBGRADER_EXECUTION"):
        print(f"fetching {_name} from {RELEASE_URL}")
        urllib.request.urlretrieve(f"{RELEASE_URL.rstrip('/')}/{_name}", _name)
    if not os.path.isfile(_name):
        raise FileNotFoundError(
            f"{_name} is not in {os.getcwd()}: it holds given code this notebook imports and comes with it "
            "(the release folder). Put it next to the notebook (Colab: Files pane, 'Upload to session "
            "storage') and run this cell again.")
    with open(_name, "rb") as _f:  # line endings aside (a Windows checkout may turn \n into \r\n)
        if hashlib.sha256(_f.read().replace(b"\r\n", b"\n")).hexdigest() != _sha:
            print(f"warning: {_name} is not the version released with this notebook (edited, or from another "
                  "release): get it again from the release folder, then restart the kernel")

# %% [markdown]
# ## Your settings
#
# The one given cell you may edit. Change a value, then run this cell and every cell after it.
# `None` keeps the default in the comment (or the environment variable named in the setup cell).
# While grading, this cell is ignored: the grader decides where the checkpoints are.

# %%
#@cell editable settings
QUICK = None           # True: quick mode, False: the full recipe, None: quick mode unless there is a GPU
CHECKPOINT_DIR = None  # None: "checkpoints", next to this notebook (/content/checkpoints on Colab)
DATASET_PATH = None    # None: "data" (CIFAR-100 goes to data/cifar-100-python/)
FEATURE_FILE = None    # None: DATASET_PATH/cifar100_resnet34_imagenet.pt (the ResNet34 features)

# Colab: to keep the checkpoints on your Google Drive across sessions, uncomment these lines.
# from google.colab import drive
# drive.mount("/content/drive")
# CHECKPOINT_DIR = "/content/drive/MyDrive/transformer_lab/checkpoints"

# %% [markdown]
# ## Setup
# Imports, and the settings above turned into the values the notebook uses. The names imported from
# `lab_data` are given data code (batched loaders, CIFAR-100, ResNet34 features, anomaly sets): it
# lives in `lab_data.py`, next to this notebook, so that it does not stand between you and the parts
# you write. Read it if you are curious; do not edit it (grading uses its own copy).

# %%
#@cell given imports
#@imports
import logging
import math
import tempfile
import warnings

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from IPython import get_ipython
from IPython.display import display
from lab_data import IMAGENET_MEAN, IMAGENET_STD, SetAnomalyDataset, SetBatchLoader, batched_loader, cached_features, load_cifar100, quick_mode_features, read_feature_file, split_train_val, synthetic_features

# %%
#@cell given setup
warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*LeafSpec.*")
warnings.filterwarnings("ignore", ".*Tensor Cores.*")
warnings.filterwarnings("ignore", ".*Checkpoint directory .* exists and is not empty.*")  # both tasks save there
for _name in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric"):
    logging.getLogger(_name).setLevel(logging.ERROR)

if get_ipython() is not None:  # draw the figures the given functions return (matplotlib Figures) inline
    get_ipython().run_line_magic("matplotlib", "inline")

GRADING = os.environ.get("NBGRADER_EXECUTION")  # "validate" or "autograde" under nbgrader, else None
HAS_GPU = torch.cuda.is_available()


def _setting(name, env, default):
    """The settings cell's value of ``name``; if None, the environment variable ``env``; else ``default``.

    Under grading the settings cell is ignored: the grader's environment decides.
    """
    value = None if GRADING else globals().get(name)
    return os.environ.get(env, default) if value is None else value


_quick = _setting("QUICK", "TL_QUICK", "0" if HAS_GPU else "1")
QUICK = _quick == "1" if isinstance(_quick, str) else bool(_quick)
CHECKPOINT_DIR = os.path.expanduser(os.fspath(_setting("CHECKPOINT_DIR", "TL_CHECKPOINT_DIR", "checkpoints")))
DATASET_PATH = os.path.expanduser(os.fspath(_setting("DATASET_PATH", "PATH_DATASETS", "data")))
FEATURE_FILE = os.path.expanduser(os.fspath(_setting("FEATURE_FILE", "TL_FEATURES",
                                                     os.path.join(DATASET_PATH, "cifar100_resnet34_imagenet.pt"))))
CHECKPOINT_FILES = ("reverse.ckpt", "anomaly.ckpt")  # all that grading reads from CHECKPOINT_DIR
# What grading demands of the trained checkpoints; the test cells check the same standard.
REVERSE_THRESHOLD = @@REVERSE_THRESHOLD@@  # token accuracy of the reverse model on fresh sequences
ANOMALY_THRESHOLD = @@ANOMALY_THRESHOLD@@  # anomaly sets solved, on CIFAR-100 features
ANOMALY_THRESHOLD_QUICK = @@ANOMALY_THRESHOLD_QUICK@@  # anomaly sets solved, on the quick mode's synthetic features
print(f"GPU: {HAS_GPU}, quick mode: {QUICK}, grading: {GRADING}")
print(f"checkpoints in {os.path.abspath(CHECKPOINT_DIR)}, data in {os.path.abspath(DATASET_PATH)}")
print(f"feature file {FEATURE_FILE}: {'found' if os.path.isfile(FEATURE_FILE) else 'not there'}")


def checkpoint_folder_note(folder=None):
    """Print what, besides reverse.ckpt and anomaly.ckpt, the checkpoint folder holds (never submitted)."""
    folder = CHECKPOINT_DIR if folder is None else folder
    extra = sorted(set(os.listdir(folder)) - set(CHECKPOINT_FILES)) if os.path.isdir(folder) else []
    if extra:
        print(f"note: {folder} also holds {', '.join(extra)}. Grading reads only {' and '.join(CHECKPOINT_FILES)}, "
              "and make_submission() leaves the rest out. (A Trainer with logger=False writes no lightning_logs/; "
              "a file like reverse-v1.ckpt means the ModelCheckpoint lacks enable_version_counter=False.)")

# %% [markdown]
# The test cells use the helpers below. They compare with tolerances and explain failures.

# %%
#@cell given check_helpers
def _where(t: torch.Tensor, mask: torch.Tensor) -> tuple:
    """Index (as a tuple) of the first True entry of ``mask``."""
    return tuple(int(i) for i in mask.nonzero()[0])


def check_type(obj, cls, name, hint=""):
    assert isinstance(obj, cls), f"{name} must be a {cls.__name__}, got {type(obj).__name__}. {hint}"


def check_shape(t, expected, name, hint=""):
    check_type(t, torch.Tensor, name, hint)
    assert tuple(t.shape) == tuple(expected), f"{name} has shape {list(t.shape)}, expected {list(expected)}. {hint}"


def check_finite(t, name, hint=""):
    check_type(t, torch.Tensor, name, hint)
    bad = ~torch.isfinite(t)
    assert not bad.any(), f"{name} has {int(bad.sum())} NaN/inf entries (first at index {_where(t, bad)}). {hint}"


def check_close(actual, expected, name, atol=1e-5, rtol=1e-4, hint=""):
    """Assert ``actual`` matches ``expected`` elementwise; the message names the worst entry."""
    check_type(actual, torch.Tensor, name, hint)
    expected = torch.as_tensor(expected, dtype=actual.dtype if actual.is_floating_point() else None)
    check_shape(actual, expected.shape, name, hint)
    actual, expected = actual.detach().double().cpu(), expected.detach().double().cpu()
    check_finite(actual, name, hint)
    err = (actual - expected).abs() - (atol + rtol * expected.abs())
    if (err > 0).any():
        idx = tuple(int(i) for i in torch.unravel_index(err.argmax(), err.shape)) if err.dim() else ()
        raise AssertionError(
            f"{name} is wrong: at index {list(idx)} it is {actual[idx].item():.5g}, expected "
            f"{expected[idx].item():.5g} (max abs error {(actual - expected).abs().max().item():.3g}). {hint}")


def check_rows_sum_to_one(attention, name="attention",
                          hint="did you apply the softmax over the last dimension (dim=-1)?"):
    check_finite(attention, name, hint)
    sums = attention.detach().double().sum(dim=-1)
    bad = (sums - 1).abs() > 1e-4
    if bad.any():
        idx = _where(sums, bad)
        raise AssertionError(f"{name} rows must sum to 1; row {list(idx)} sums to {sums[idx].item():.3f} — {hint}")


def check_scalar(t, name, hint=""):
    check_type(t, torch.Tensor, name, hint)
    assert t.dim() == 0, f"{name} must be a scalar tensor (0 dimensions), got shape {list(t.shape)}. {hint}"
    check_finite(t, name, hint)


class LogRecorder:
    """Stands in for ``LightningModule.log`` outside a Trainer: ``model.log = LogRecorder()``."""

    def __init__(self):
        self.logged = {}

    def __call__(self, name, value, *args, **kwargs):
        self.logged[name] = value


def record_logs(model):
    """Replace ``model.log`` with a :class:`LogRecorder`."""
    model.log = recorder = LogRecorder()
    return recorder


def fixed_forward(model, logits, calls=None):
    """Make ``model.forward`` return ``logits`` whatever the input; record the keyword arguments."""
    def forward(*args, **kwargs):
        if calls is not None:
            calls.append(kwargs)
        return logits
    model.forward = forward
    return model

# %% [markdown]
# ## Input checks
# The given modules validate their inputs, so that a wrong shape fails with a message that names the
# module, the argument and the expected shape (not a matrix-multiplication error three calls deeper).

# %%
#@cell given input_checks
#@include _checks:_fmt,check_tensor,check_mask

# %% [markdown]
# ## 1. Scaled dot-product attention
#
# Attention is a weighted average of the *values* of a sequence, where the weights depend on how
# well each element's *key* matches a *query*. In self-attention every element provides a query,
# a key and a value. With queries $Q\in\mathbb{R}^{T\times d_k}$, keys $K\in\mathbb{R}^{T\times d_k}$
# and values $V\in\mathbb{R}^{T\times d_v}$:
#
# $$\text{Attention}(Q,K,V)=\text{softmax}\left(\frac{QK^T}{\sqrt{d_k}}\right)V$$
#
# Row $i$ of $QK^T$ holds the logits of element $i$ towards all elements; the softmax turns each row
# into weights that sum to 1. The factor $1/\sqrt{d_k}$ keeps the variance of the logits near 1 at
# initialisation: a dot product of two $d_k$-dimensional vectors with unit-variance entries has
# variance $d_k$, and a softmax over such large logits saturates, so its gradients vanish.
#
# An optional **mask** removes positions from the attention (e.g. padding): wherever `mask == 0`,
# set the logit to a very negative number *before* the softmax, so that its weight becomes 0. Use
# `mask_fill_value(dtype)` below rather than a constant like `-9e15`, which overflows to `-inf` in
# float16 and turns a fully masked row into NaN. Your function must work for any number of leading
# (batch, head) dimensions.

# %%
#@cell given mask_value
#@include attention:mask_fill_value

# %%
#@cell impl scaled_dot_product
#@include attention:scaled_dot_product

# %%
#@cell test scaled_dot_product
# The tutorial's example: seed 42, three queries/keys/values of dimension 2.
torch.manual_seed(42)
_q, _k, _v = torch.randn(3, 2), torch.randn(3, 2), torch.randn(3, 2)
_out = scaled_dot_product(_q, _k, _v)
assert isinstance(_out, tuple) and len(_out) == 2, "scaled_dot_product must return a tuple (values, attention)"
_values, _attention = _out
check_shape(_attention, (3, 3), "attention", "it is [..., SeqLen_q, SeqLen_k]")
check_rows_sum_to_one(_attention)
check_close(_attention, [[0.4028, 0.2886, 0.3086], [0.3538, 0.3069, 0.3393], [0.1303, 0.4630, 0.4067]],
            "attention", atol=2e-4, hint="attention = softmax(q @ k^T / sqrt(d_k), dim=-1); check the scaling")
check_close(_values, [[0.5698, -0.1520], [0.5379, -0.0265], [0.2246, 0.5556]], "values", atol=2e-4,
            hint="values = attention @ v")
# Batched inputs [Batch, Heads, SeqLen, d_k].
_q, _k, _v = torch.randn(2, 4, 5, 8), torch.randn(2, 4, 5, 8), torch.randn(2, 4, 5, 8)
_values, _attention = scaled_dot_product(_q, _k, _v)
check_shape(_values, (2, 4, 5, 8), "values of batched input", "use k.transpose(-2, -1), not k.T")
check_shape(_attention, (2, 4, 5, 5), "attention of batched input", "use k.transpose(-2, -1), not k.T")
check_rows_sum_to_one(_attention)
# A causal mask: position i may only attend to positions <= i.
_mask = torch.ones(5, 5).tril()
_values, _attention = scaled_dot_product(_q, _k, _v, mask=_mask)
check_rows_sum_to_one(_attention, hint="with a mask, the softmax still runs over the last dimension")
_leak = (_attention * (1 - _mask)).abs() > 1e-6
assert not _leak.any(), (
    f"masked positions (mask == 0) must get zero attention; attention{list(_where(_attention, _leak))} = "
    f"{_attention[_where(_attention, _leak)].item():.3f} — fill the masked logits with mask_fill_value(dtype) "
    "*before* the softmax")
print("scaled_dot_product: visible tests passed")

# %% [markdown]
# ## 2. Multi-head attention
#
# One weighted average per element is often not enough: an element may need to look at several
# aspects of the others at once. Multi-head attention projects the input into $h$ separate
# query/key/value triples (*heads*) of dimension `head_dim = embed_dim // num_heads`, runs
# scaled dot-product attention on each head independently, concatenates the heads and mixes them
# with an output projection $W^O$:
#
# $$\text{MultiHead}(X)=\text{Concat}(\text{head}_1,\dots,\text{head}_h)W^O,\quad
#   \text{head}_i=\text{Attention}(XW_i^Q, XW_i^K, XW_i^V)$$
#
# For efficiency, one linear layer `qkv_proj` computes all projections at once. Its output layout is
# fixed (checkpoints depend on it): reshape it to `[Batch, SeqLen, num_heads, 3 * head_dim]`; each
# head's slice holds **its** q, k and v one after the other. Move the head dimension before the
# sequence dimension, split the last dimension into q, k, v, attend, then undo the reshuffling and
# apply `o_proj`. Without positional information, self-attention is *permutation-equivariant*:
# permuting the input elements permutes the outputs the same way.

# %%
#@cell impl multihead_attention
#@include attention:MultiheadAttention

# %%
#@cell test multihead_attention
torch.manual_seed(0)
_mha = MultiheadAttention(input_dim=16, embed_dim=32, num_heads=4)
_x = torch.randn(2, 6, 16)
_out = _mha(_x)
check_shape(_out, (2, 6, 32), "MultiheadAttention output", "it is [Batch, SeqLen, embed_dim]; apply o_proj last")
_out2, _attention = _mha(_x, return_attention=True)
check_shape(_attention, (2, 4, 6, 6), "attention weights", "they are [Batch, num_heads, SeqLen, SeqLen]")
check_rows_sum_to_one(_attention)
check_close(_out2, _out, "output with return_attention=True", hint="return_attention must not change the output")
_perm = torch.tensor([3, 0, 5, 1, 4, 2])
check_close(_mha(_x[:, _perm]), _out[:, _perm], "output of the permuted input", atol=1e-5,
            hint="self-attention must be permutation-equivariant: do not mix the batch or sequence dimensions when reshaping")
print("MultiheadAttention: visible tests passed")

# %% [markdown]
# ## 3. The Transformer encoder
#
# An encoder block applies multi-head attention and then a small position-wise MLP
# (Linear → ReLU → Linear), each wrapped in a **residual connection** followed by **layer
# normalisation** (the original "post-LN" Transformer):
#
# $$h = \text{LayerNorm}(x + \text{Dropout}(\text{MHA}(x))),\qquad
#   y = \text{LayerNorm}(h + \text{Dropout}(\text{MLP}(h)))$$
#
# The residual connections keep gradients flowing through deep stacks and, just as important, keep
# each element's own information: attention alone would mix all elements into similar averages.
# Layer normalisation keeps the features of all elements at a similar scale, independently of the
# batch size. Pass the `mask` on to the attention.

# %%
#@cell impl encoder_block
#@include encoder:EncoderBlock

# %%
#@cell test encoder_block
torch.manual_seed(0)
_block = EncoderBlock(input_dim=16, num_heads=2, dim_feedforward=32, dropout=0.0).eval()
_x = torch.randn(3, 7, 16)
_y = _block(_x)
check_shape(_y, (3, 7, 16), "EncoderBlock output", "the block keeps the shape [Batch, SeqLen, input_dim]")
check_close(_block(_x), _y, "a second call in eval mode", hint="the block must be deterministic in eval mode")
check_close(_y.mean(-1), torch.zeros(3, 7), "mean over features of the output", atol=1e-5,
            hint="post-LN: norm2(h + dropout(MLP(h))) must be the last operation")
check_close(_y.std(-1, unbiased=False), torch.ones(3, 7), "std over features of the output", atol=1e-3,
            hint="post-LN: norm2(h + dropout(MLP(h))) must be the last operation")
with torch.no_grad():  # the block's own submodules, composed as the tutorial does (LayerNorm hides a lost residual)
    _h = _block.norm1(_x + _block.self_attn(_x))
    _expected = _block.norm2(_h + _block.linear_net(_h))
check_close(_y, _expected, "EncoderBlock output vs norm2(h + linear_net(h)), h = norm1(x + self_attn(x))", atol=1e-5,
            hint="keep both residual connections (x + ...) and apply each norm after its addition (post-LN)")
print("EncoderBlock: visible tests passed")

# %% [markdown]
# The encoder stacks `num_layers` blocks. `get_attention_maps` returns the attention weights of
# every layer, which we will plot later. (Read attention maps with care: attention weights are not
# necessarily an explanation of the model's decision.)

# %%
#@cell given transformer_encoder
#@include encoder:TransformerEncoder

# %% [markdown]
# ## 4. Positional encoding
#
# Because attention is permutation-equivariant, a Transformer does not know the order of a sequence
# unless we add it to the features. The sinusoidal encoding of Vaswani et al. adds, at position
# $pos$ and feature $i$,
#
# $$PE_{(pos,2i)}=\sin\left(\frac{pos}{10000^{2i/d_{\text{model}}}}\right),\qquad
#   PE_{(pos,2i+1)}=\cos\left(\frac{pos}{10000^{2i/d_{\text{model}}}}\right)$$
#
# i.e. sines on the even features and cosines on the odd ones, with wavelengths from $2\pi$ to
# $10000\cdot 2\pi$. $PE_{pos+k}$ is a linear function of $PE_{pos}$, which makes relative positions
# easy to attend to. Implement the table, and `forward`, which **returns** `x` plus the first
# `SeqLen` rows of the table. The table is a non-persistent buffer: it moves with the module to the
# GPU but is not saved in checkpoints.

# %%
#@cell impl positional_encoding
#@include positional:sinusoidal_table,PositionalEncoding

# %%
#@cell test positional_encoding
_pe = PositionalEncoding(d_model=8, max_len=20)
check_shape(_pe.pe, (1, 20, 8), "PositionalEncoding.pe", "sinusoidal_table returns [max_len, d_model]")
check_close(_pe.pe[0, 0, 0::2], torch.zeros(4), "pe at position 0, even features", atol=1e-6, hint="even features are sin(0) = 0")
check_close(_pe.pe[0, 0, 1::2], torch.ones(4), "pe at position 0, odd features", atol=1e-6, hint="odd features are cos(0) = 1")
check_close(_pe.pe[0, 1, 0], math.sin(1.0), "pe at position 1, feature 0", atol=1e-6, hint="feature 0 is sin(pos)")
_x = torch.randn(2, 5, 8)
_y = _pe(_x)
assert _y is not None, "PositionalEncoding.forward returned None: return x + the encoding"
check_close(_y, _x + _pe.pe[:, :5], "PositionalEncoding(x)", atol=1e-6, hint="return x + self.pe[:, :x.size(1)]")
assert not torch.allclose(_y, _x), "the positional encoding must change its input"
print("PositionalEncoding: visible tests passed")

# %% [markdown]
# The encoding as an image (features × positions), and the first four features as curves: pairs of
# features share a frequency and differ by a quarter period; the frequency halves every few features.

# %%
#@cell given figure_helpers
#@include plots:_save,plot_positional_encoding,plot_lr_schedule

# %%
display(plot_positional_encoding())

# %% [markdown]
# ## 5. Learning-rate warm-up
#
# Transformers are usually trained with a learning rate that grows linearly from 0 during the first
# `warmup` steps and then decays. Without warm-up, Adam's early, high-variance updates and the
# large gradients of stacked layer normalisations can make training diverge. We use the *cosine
# warm-up* schedule, a multiplicative factor on the base learning rate at step $t$ (counted in
# batches, not epochs):
#
# $$f(t) = \tfrac12\left(1+\cos\frac{\pi t}{T_{\max}}\right)\cdot\begin{cases} t/\text{warmup} & t\le\text{warmup}\\ 1 & \text{otherwise}\end{cases}$$

# %%
#@cell impl warmup_factor
#@include scheduler:warmup_cosine_factor

# %% [markdown]
# The scheduler multiplies each base learning rate by your factor; it is stepped once per batch.

# %%
#@cell given scheduler
#@include scheduler:CosineWarmupScheduler

# %%
#@cell test warmup_factor
_f = warmup_cosine_factor
assert abs(float(_f(0, 100, 2000))) < 1e-9, f"the factor must be 0 at step 0, got {_f(0, 100, 2000)}"
assert abs(float(_f(100, 100, 2000)) - 1) < 0.01, f"the factor must be ~1 at the end of warm-up (step 100 of 2000), got {_f(100, 100, 2000)}"
assert abs(float(_f(2000, 100, 2000))) < 1e-6, f"the factor must be 0 at max_iters, got {_f(2000, 100, 2000)}: check the cosine"
_ramp = [float(_f(s, 100, 2000)) for s in range(0, 101, 10)]
assert all(a < b for a, b in zip(_ramp, _ramp[1:])), f"the factor must grow during warm-up, got {[round(r, 3) for r in _ramp]}"
print("warmup_cosine_factor: visible tests passed")

# %%
display(plot_lr_schedule(warmup=100, max_iters=2000))

# %% [markdown]
# ## The Transformer as a Lightning module
#
# `TransformerPredictor` puts the parts together: an input network (dropout + linear) maps the
# input features to `model_dim`, the positional encoding is added (optional), the encoder runs, and
# an output network predicts `num_classes` logits **per element**. It also sets up Adam with the
# warm-up schedule, stepped per batch. The training/validation/test steps are left to the task
# subclasses. Checkpoints are read safely (tensors only, nothing that would run code).

# %%
#@cell given checkpoint_io
#@include checkpoints:TASK_KEY,CheckpointError,read_checkpoint

# %%
#@cell given predictor
#@include predictor:TransformerPredictor

# %% [markdown]
# ## 6. Sequence to sequence: reversing a sequence
#
# Given a sequence of $N$ digits in $[0, M)$, predict the sequence reversed (`x[::-1]` in numpy).
# We use only the encoder, with one output per input position. The task needs long-range
# dependencies (the first output depends on the last input), which recurrent networks find hard and
# attention finds easy. Every digit enters as a one-hot vector; `input_net`'s linear layer then acts
# as an embedding (the model accepts the token ids directly and does this lookup for you). A learned
# `nn.Embedding(num_classes, model_dim)` in its place is the same model (the lab sheet allows either):
# grading accepts both input layers, as `input_net[1]`, and no other.

# %%
#@cell given reverse_data
#@include reverse:ReverseDataset

# %%
_example = ReverseDataset(num_categories=10, seq_len=16, size=1, generator=torch.Generator().manual_seed(0))
print("Input data:", _example[0][0])
print("Labels:    ", _example[0][1])

# %% [markdown]
# `ReversePredictor` subclasses `TransformerPredictor`. Implement `_calculate_loss`: run the model
# on the batch (with positional encoding: order matters here), compute the cross-entropy over all
# tokens and the token accuracy, log both as `f"{mode}_loss"` / `f"{mode}_acc"` (the checkpoint
# callback monitors `val_acc`) and return them. `training_step` and friends call it.

# %%
#@cell impl reverse_loss
#@include reverse:ReversePredictor

# %%
#@cell test reverse_loss
def _reverse_model(num_classes=10):
    torch.manual_seed(0)
    return ReversePredictor(input_dim=num_classes, model_dim=16, num_classes=num_classes, num_heads=1,
                            num_layers=1, lr=1e-3, warmup=10, max_iters=100)
_tokens = torch.randint(10, (4, 16), generator=torch.Generator().manual_seed(0))
_labels = _tokens.flip(-1)
_model = _reverse_model()
_rec = record_logs(_model)
_out = _model._calculate_loss((_tokens, _labels), mode="val")
assert isinstance(_out, tuple) and len(_out) == 2, "_calculate_loss must return a tuple (loss, acc)"
check_scalar(_out[0], "loss", "average the cross-entropy over all tokens")
check_scalar(_out[1], "accuracy", "average over all tokens: (preds.argmax(-1) == labels).float().mean()")
assert {"val_loss", "val_acc"} <= set(_rec.logged), (
    f"with mode='val' log 'val_loss' and 'val_acc' (self.log(f'{{mode}}_acc', acc)); logged {sorted(_rec.logged)}")
_perfect = 20 * F.one_hot(_labels, 10).float()
_loss, _acc = fixed_forward(_model, _perfect)._calculate_loss((_tokens, _labels), mode="train")
assert abs(float(_acc) - 1) < 1e-6, f"a model whose logits always pick the label must get accuracy 1, got {float(_acc):.3f}: compare preds.argmax(dim=-1) with the labels"
assert float(_loss) < 1e-3, f"a model that is surely right must get a loss near 0, got {float(_loss):.4f}"
_loss, _acc = fixed_forward(_model, 20 * F.one_hot((_labels + 1) % 10, 10).float())._calculate_loss((_tokens, _labels))
assert abs(float(_acc)) < 1e-6, f"a model that is always wrong must get accuracy 0, got {float(_acc):.3f}"
print("ReversePredictor._calculate_loss: visible tests passed")

# %% [markdown]
# ## 7. Training the reverse model
#
# `ReverseConfig` holds the tutorial's recipe (1 layer, 1 head, `model_dim` 32, lr 5e-4, warm-up 50,
# 10 epochs, batch 128) and `reverse_loaders` builds seeded loaders. Implement `train_reverse` with a
# PyTorch Lightning `Trainer`:
#
# * **gradient clipping** (`gradient_clip_val=cfg.gradient_clip_val`): clip the gradient norm
#   before each step, so a sharp region of the loss surface cannot throw the model off;
# * a `ModelCheckpoint` that keeps the **best** model by validation accuracy, saved as
#   `<checkpoint_dir>/reverse.ckpt` (`filename="reverse"`, `enable_version_counter=False`);
# * `max_iters` of the model = epochs × batches per epoch (for the schedule);
# * after `fit`, reload the best checkpoint and test it on the validation and test loaders;
# * `logger=False`: nothing here needs a log file, and the default logger would write a
#   `lightning_logs/` folder into the checkpoint folder (which grading ignores).

# %%
#@cell given reverse_config
#@include runtime:cpu_threads,uses_cpu
#@include reverse:ReverseConfig,reverse_loaders

# %%
#@cell impl train_reverse
#@include reverse:train_reverse

# %% [markdown]
# Run the training. In quick mode (the default without a GPU) fewer, larger steps on less data, which
# still reach ~100%: about 5 s on an idle 2-core CPU. The full recipe: about 45 s on that CPU, about a minute
# on an NVIDIA H100 GPU (the tiny model's steps are too short to keep a GPU busy). Under grading this
# cell loads your `checkpoints/reverse.ckpt` instead of training.

# %%
#@cell given run_reverse
REVERSE_CKPT = os.path.join(CHECKPOINT_DIR, "reverse.ckpt")
if QUICK:
    reverse_cfg = ReverseConfig(train_size=12800, test_size=2000, max_epochs=4, lr=2e-3, warmup=20)
else:
    reverse_cfg = ReverseConfig()
reverse_model = None
if GRADING:
    try:
        reverse_model = ReversePredictor.load_from_checkpoint(REVERSE_CKPT, map_location="cpu")
    except Exception as e:  # reported by the test below
        print(f"could not load {REVERSE_CKPT}: {e}")
else:
    reverse_model, reverse_result = train_reverse(CHECKPOINT_DIR, reverse_cfg, progress=True)
    print(f"val accuracy:  {100 * reverse_result['val_acc']:.2f}%")
    print(f"test accuracy: {100 * reverse_result['test_acc']:.2f}%")
    checkpoint_folder_note()

# %%
#@cell test train_reverse
@torch.no_grad()
def _reverse_accuracy(model, n=1000, seed=1234):
    tokens = ReverseDataset(model.hparams.num_classes, 16, n, generator=torch.Generator().manual_seed(seed)).data
    model = model.cpu().eval()
    return (model(tokens).argmax(-1) == tokens.flip(-1)).float().mean().item()
assert os.path.isfile(REVERSE_CKPT), (
    f"{REVERSE_CKPT} not found: run the training cell above (train_reverse must keep the best model as "
    "<checkpoint_dir>/reverse.ckpt) and submit the checkpoints folder with the notebook")
_m = ReversePredictor.load_from_checkpoint(REVERSE_CKPT, map_location="cpu")
assert (_m.hparams.num_layers, _m.hparams.num_heads) == (1, 1), (
    f"the reverse model should have 1 layer and 1 head, got {_m.hparams.num_layers} and {_m.hparams.num_heads}")
_acc = _reverse_accuracy(_m)
assert _acc >= REVERSE_THRESHOLD, (f"the checkpoint reaches {100 * _acc:.1f}% token accuracy on fresh sequences; grading "
                                  f"requires >= {100 * REVERSE_THRESHOLD:.0f}% — train longer or check the loss")
print(f"train_reverse: visible tests passed ({100 * _acc:.2f}% on fresh sequences)")

# %% [markdown]
# ## 8. Attention maps
#
# `get_attention_maps` returns one tensor `[Batch, Heads, SeqLen, SeqLen]` per layer. Write
# `plot_attention_maps`: a grid with the layers over the rows and the heads over the columns, each
# cell the attention map of batch element `idx` (`imshow`, `origin="lower"`), the axes labelled with
# the input tokens (or positions when `input_data` is None) and titled "Layer l, Head h". Return the
# `matplotlib.figure.Figure` (build it with `Figure(...)` or `plt.subplots`), saved to `path` if given.

# %%
#@cell impl attention_plot
#@include plots:plot_attention_maps

# %%
if reverse_model is not None:
    _, _val_loader, _ = reverse_loaders(reverse_cfg)
    _tokens, _ = next(iter(_val_loader))
    reverse_model.eval()
    _maps = reverse_model.get_attention_maps(_tokens.to(reverse_model.device))
    print("attention maps:", [tuple(m.shape) for m in _maps])
    display(plot_attention_maps(_tokens, _maps, idx=0))

# %% [markdown]
# The model attends to the mirrored position, plus a little to its neighbours: it does not need hard
# attention to solve the task, and neighbouring positions have similar positional encodings.

# %%
#@cell test attention_plot
_g = torch.Generator().manual_seed(3)
_maps = [torch.softmax(torch.randn(2, 3, 5, 5, generator=_g), dim=-1) for _ in range(2)]
_tokens = torch.randint(10, (2, 5), generator=_g)
_fig = plot_attention_maps(_tokens, _maps, idx=1)
check_type(_fig, matplotlib.figure.Figure, "the return value of plot_attention_maps", "return the figure")
_image_axes = [ax for ax in _fig.axes if ax.images]
assert len(_image_axes) == 6, f"2 layers x 3 heads need 6 attention images, found {len(_image_axes)}: one imshow per (layer, head)"
print("plot_attention_maps: visible tests passed")

# %% [markdown]
# ## Set anomaly detection
#
# Sets have no order, and a model of a set should not invent one: its output should be
# *permutation-equivariant* (permuting the inputs permutes the outputs). Multi-head attention without
# positional encoding is exactly that, which makes the Transformer a natural model for sets.
#
# **The task.** A set holds nine images of one CIFAR-100 class and one image of another class (the
# *anomaly*); find the anomaly. With 100 classes, many of them similar (bus vs. train, palm vs.
# tree), the model must compare fine features across the whole set.
#
# **The features.** Raw pixels are a poor input for a Transformer (it is not translation invariant as
# a CNN is), so each 32×32 image is resized to 224×224, normalised with the ImageNet statistics and
# passed through a pretrained ResNet34 without its classifier: 512 features per image, extracted
# once and cached in `FEATURE_FILE` (default `data/cifar100_resnet34_imagenet.pt`). In full mode
# the first run downloads CIFAR-100 and the ResNet weights and extracts the features (2–3 minutes
# on Colab's GPUs, says the tutorial; about 80 minutes on a 2-core CPU, estimated).
# Without that file (in quick mode, or when the downloads fail) the cell below uses **synthetic**
# 512-d features (class means plus noise) so that everything runs on a CPU; the task is then easier
# than on real images.

# %% [markdown]
# The training images are split 90/10 into training and validation, **balanced** per class
# (the first 10% of every class go to validation). `SetAnomalyDataset` builds the sets: item `i` is
# the set whose anomaly is image `i`, so an epoch shows every image once as the anomaly; the anomaly
# is always the **last** element (label `set_size - 1`), which is harmless for a permutation-
# equivariant model. Training sets are drawn afresh on every access; validation and test sets are
# drawn once from a seeded generator, so they are the same on every run and every platform.
# `SetBatchLoader` samples and gathers whole batches with tensor operations. This code (`load_cifar100`,
# `cached_features`, `split_train_val`, `SetAnomalyDataset`, `SetBatchLoader`) is given, in `lab_data.py`;
# the cell below puts it to work.

# %%
#@cell given anomaly_data
anomaly_images = {"train": None, "test": None}  # uint8 CIFAR images for the figures, when available
ANOMALY_SOURCE = None
if os.path.isfile(FEATURE_FILE):
    _splits = read_feature_file(FEATURE_FILE)["splits"]
    if not all(n in _splits and _splits[n].get("labels") is not None for n in ("train", "test")):
        raise ValueError(f"{FEATURE_FILE} must hold the 'train' and 'test' splits with labels")
    _splits = {n: (_splits[n]["features"], _splits[n]["labels"]) for n in ("train", "test")}
    ANOMALY_SOURCE = "cifar"
    if not GRADING:
        for _n in ("train", "test"):
            try:
                anomaly_images[_n] = load_cifar100(DATASET_PATH, train=_n == "train").images
            except (FileNotFoundError, ValueError):
                pass
elif not QUICK and not GRADING:
    try:  # downloads CIFAR-100 and the ResNet34 weights once, then extracts and caches the features
        _data = {n: load_cifar100(DATASET_PATH, train=n == "train", download=True) for n in ("train", "test")}
        _feats, _ = cached_features(FEATURE_FILE, {n: (d.images, d.labels) for n, d in _data.items()})
        _splits = {n: (_feats[n]["features"], _feats[n]["labels"]) for n in ("train", "test")}
        anomaly_images = {n: d.images for n, d in _data.items()}
        ANOMALY_SOURCE = "cifar"
    except FileNotFoundError as e:  # no network: say where the files must go, and carry on
        print(f"{e}\n-> using synthetic features instead")
if ANOMALY_SOURCE is None:
    _splits = quick_mode_features()  # 50 classes: 100 per class train (90 + 10 val), 20 test
    ANOMALY_SOURCE = "synthetic"
train_feats, train_labels, val_feats, val_labels = split_train_val(*_splits["train"])
test_feats, test_labels = _splits["test"]
SET_SIZE = 10
print(f"{ANOMALY_SOURCE} features: train {tuple(train_feats.shape)}, val {tuple(val_feats.shape)}, "
      f"test {tuple(test_feats.shape)}")

# %% [markdown]
# A few test sets, one per row; the last image (framed in red) is the anomaly. (With synthetic
# features the grid shows the image indices instead of pictures.)

# %%
#@cell given anomaly_figures
#@include anomaly_plots:to_display,_draw_cell,plot_anomaly_sets,find_mistakes,plot_mistakes

# %%
_test_sets = SetAnomalyDataset(test_feats, test_labels, set_size=SET_SIZE, train=False)
_, _indices, _ = next(iter(SetBatchLoader(_test_sets, batch_size=4)))
display(plot_anomaly_sets(_indices, images=anomaly_images["test"]))

# %% [markdown]
# ## 9. The anomaly model
#
# `AnomalyPredictor` outputs **one logit per set element** (`num_classes=1`), and the softmax runs
# over the elements of the set, not over classes: the anomaly should get the highest probability.
# Swapping two images swaps their logits, so the prediction is equivariant. Do **not** add the
# positional encoding: a set has no positions. Implement `_calculate_loss` (batches are
# `(img_sets, indices, labels)`; `labels` holds the anomaly's position) and log
# `f"{mode}_loss"` / `f"{mode}_acc"`.

# %%
#@cell impl anomaly_loss
#@include anomaly:AnomalyPredictor

# %%
#@cell test anomaly_loss
def _anomaly_model(input_dim=12):
    torch.manual_seed(0)
    return AnomalyPredictor(input_dim=input_dim, model_dim=16, num_classes=1, num_heads=2, num_layers=1,
                            lr=1e-3, warmup=10, max_iters=100)
_sets = torch.randn(4, 10, 12, generator=torch.Generator().manual_seed(0))
_labels = torch.full((4,), 9)
_batch = (_sets, torch.arange(40).reshape(4, 10), _labels)
_model = _anomaly_model()
_rec = record_logs(_model)
_out = _model._calculate_loss(_batch, mode="val")
assert isinstance(_out, tuple) and len(_out) == 2, "_calculate_loss must return a tuple (loss, acc)"
check_scalar(_out[0], "loss", "cross-entropy of the logits [Batch, SetSize] against the anomaly positions")
check_scalar(_out[1], "accuracy", "(logits.argmax(dim=-1) == labels).float().mean()")
assert {"val_loss", "val_acc"} <= set(_rec.logged), (
    f"with mode='val' log 'val_loss' and 'val_acc'; logged {sorted(_rec.logged)}")
_right = torch.zeros(4, 10, 1)
_right[:, 9] = 20.0
_loss, _acc = fixed_forward(_model, _right)._calculate_loss(_batch)
assert abs(float(_acc) - 1) < 1e-6, (
    f"a model whose largest logit is the anomaly must get accuracy 1, got {float(_acc):.3f}: squeeze the last "
    "dimension of the logits [Batch, SetSize, 1] and take the argmax over the set")
assert float(_loss) < 1e-3, f"a model that is surely right must get a loss near 0, got {float(_loss):.4f}: softmax over the set dimension"
_wrong = torch.zeros(4, 10, 1)
_wrong[:, 3] = 20.0
_loss, _acc = fixed_forward(_model, _wrong)._calculate_loss(_batch)
assert abs(float(_acc)) < 1e-6, f"a model that always picks element 3 must get accuracy 0, got {float(_acc):.3f}"
print("AnomalyPredictor._calculate_loss: visible tests passed")

# %% [markdown]
# ## 10. Training the anomaly model
#
# `AnomalyConfig` is the tutorial's recipe: 4 layers, 4 heads, `model_dim` 256, dropout 0.1 in the
# model and on the input features (robustness to image noise), lr 5e-4, warm-up 100, 100 epochs,
# gradient clipping at 2. `anomaly_loaders` builds the loaders from the features. Write
# `train_anomaly` as you wrote `train_reverse`: a `Trainer` with gradient clipping, a best-by-`val_acc`
# `ModelCheckpoint` saved as `<checkpoint_dir>/anomaly.ckpt`, `fit`, reload the best checkpoint and
# report the train/val/test accuracies. In quick mode the model is smaller (dim 64, 2 layers) and trains
# for 15 epochs: about 25 s on an idle 2-core CPU with the synthetic features. The full recipe: 26 minutes on
# that CPU with the synthetic features, about 4 hours with CIFAR-100's (estimated); about 18 minutes
# of training on an NVIDIA H100 (Colab's GPUs are slower).

# %%
#@cell given anomaly_config
#@include anomaly:AnomalyConfig,quick_anomaly_config,anomaly_loaders,anomaly_probabilities,equivariance_error

# %%
#@cell impl train_anomaly
#@include anomaly:train_anomaly

# %%
#@cell given run_anomaly
ANOMALY_CKPT = os.path.join(CHECKPOINT_DIR, "anomaly.ckpt")
if QUICK:
    anomaly_cfg = quick_anomaly_config()
else:
    anomaly_cfg = AnomalyConfig()
anomaly_model = None
if GRADING:
    try:
        anomaly_model = AnomalyPredictor.load_from_checkpoint(ANOMALY_CKPT, map_location="cpu")
    except Exception as e:  # reported by the test below
        print(f"could not load {ANOMALY_CKPT}: {e}")
else:
    # One CPU thread: faster for models this small, and far faster on a busy machine (see cpu_threads).
    with cpu_threads(None if HAS_GPU else 1):
        anomaly_model, anomaly_result = train_anomaly(CHECKPOINT_DIR, train_feats, train_labels, val_feats,
                                                      val_labels, test_feats, test_labels, anomaly_cfg, progress=True)
    for _k in ("train_acc", "val_acc", "test_acc"):
        print(f"{_k}: {100 * anomaly_result[_k]:.2f}%")
    checkpoint_folder_note()

# %%
#@cell test train_anomaly
assert os.path.isfile(ANOMALY_CKPT), (
    f"{ANOMALY_CKPT} not found: run the training cell above (train_anomaly must keep the best model as "
    "<checkpoint_dir>/anomaly.ckpt) and submit the checkpoints folder with the notebook")
_m = AnomalyPredictor.load_from_checkpoint(ANOMALY_CKPT, map_location="cpu").eval()
assert _m.hparams.num_classes == 1, f"the anomaly model needs one logit per element (num_classes=1), got {_m.hparams.num_classes}"
assert _m.hparams.input_dim == val_feats.shape[-1], f"the anomaly model expects {_m.hparams.input_dim}-d inputs, the features are {val_feats.shape[-1]}-d"
_val_sets = SetBatchLoader(SetAnomalyDataset(val_feats, val_labels, set_size=SET_SIZE, train=False, seed=7), batch_size=256)
_correct = _total = 0
for _x, _, _y in _val_sets:
    _correct += int((anomaly_probabilities(_m, _x).argmax(-1).cpu() == _y).sum())
    _total += len(_y)
_acc = _correct / _total
if GRADING and ANOMALY_SOURCE == "synthetic" and _acc < 0.5:
    print(f"note: {100 * _acc:.1f}% on synthetic sets; the checkpoint was probably trained on CIFAR features, "
          f"which are not available here ({FEATURE_FILE}), so its accuracy is not checked")
else:  # the standard grading applies to the features it was trained on
    _need = ANOMALY_THRESHOLD if ANOMALY_SOURCE == "cifar" else ANOMALY_THRESHOLD_QUICK
    _trained = globals().get("anomaly_result", {}).get("train_acc", 0)
    _why = ("train longer or check the loss" if _trained < _need else
            f"training reported {100 * _trained:.1f}%, so the model is right only on the sets as it saw them: "
            "a set has no order, so the loss must not add positional encoding "
            "(self.forward(..., add_positional_encoding=False) in _calculate_loss)")
    assert _acc >= _need, (f"the checkpoint finds the anomaly in {100 * _acc:.1f}% of fixed validation sets "
                           f"({ANOMALY_SOURCE} features; chance is {100 / SET_SIZE:.0f}%); grading requires >= "
                           f"{100 * _need:.0f}% on test sets of such features — {_why}")
print(f"train_anomaly: visible tests passed ({100 * _acc:.1f}% of validation sets)")

# %% [markdown]
# **Permutation equivariance.** Permuting a set must permute the predicted probabilities the same
# way (up to floating-point noise):

# %%
if anomaly_model is not None:
    _test_loader = SetBatchLoader(SetAnomalyDataset(test_feats, test_labels, set_size=SET_SIZE, train=False), batch_size=64)
    anomaly_sets, anomaly_indices, _ = next(iter(_test_loader))
    anomaly_model = anomaly_model.cpu().eval()
    print(f"max |P(x)[perm] - P(x[perm])| = {equivariance_error(anomaly_model, anomaly_sets):.2e}")

# %% [markdown]
# ## 11. Looking inside: the prediction view
#
# Write `plot_anomaly_prediction`: for set `idx` of a batch, draw the set's images (the helper
# `_draw_cell` draws one image, or its index when `images` is None) titled with their predicted
# probabilities, the predicted anomaly and the true one marked, and below them the attention maps of
# every layer (rows) and head (columns), as in `plot_attention_maps`. Return the `Figure`.

# %%
#@cell impl prediction_view
#@include anomaly_plots:plot_anomaly_prediction

# %%
#@cell test prediction_view
_g = torch.Generator().manual_seed(5)
_maps = [torch.softmax(torch.randn(3, 2, 10, 10, generator=_g), dim=-1) for _ in range(2)]
_probs = torch.softmax(torch.randn(3, 10, generator=_g), dim=-1)
_idx = torch.arange(30).reshape(3, 10)
_fig = plot_anomaly_prediction(_idx, _probs, _maps, idx=1)
check_type(_fig, matplotlib.figure.Figure, "the return value of plot_anomaly_prediction", "return the figure")
_image_axes = [ax for ax in _fig.get_axes() if ax.images]
assert len(_image_axes) == 4, (f"without images, 2 layers x 2 heads need 4 attention images, found {len(_image_axes)}: "
                               "one imshow per (layer, head)")
_pics = np.random.default_rng(0).integers(0, 255, (30, 32, 32, 3), dtype=np.uint8)
_fig = plot_anomaly_prediction(_idx, _probs, _maps, idx=1, images=_pics)
_n = len([ax for ax in _fig.get_axes() if ax.images])
assert _n == 14, f"with images: 10 set images + 4 attention maps = 14 image axes expected, found {_n}"
print("plot_anomaly_prediction: visible tests passed")

# %% [markdown]
# The prediction for the first test set, and the sets of the batch that the model gets wrong.
# Look for heads that single out the anomaly, and for heads that average over the whole set (the
# model may compare each image with the set's "average" features).

# %%
if anomaly_model is not None:
    anomaly_probs = anomaly_probabilities(anomaly_model, anomaly_sets)
    anomaly_maps = anomaly_model.get_attention_maps(anomaly_sets)
    display(plot_anomaly_prediction(anomaly_indices, anomaly_probs, anomaly_maps, idx=0, images=anomaly_images["test"]))
    print("sets with a mistake:", find_mistakes(anomaly_probs).tolist())
    display(plot_mistakes(anomaly_indices, anomaly_probs, images=anomaly_images["test"]))

# %% [markdown]
# ## Submitting
#
# 1. Run the whole notebook: *Kernel → Restart Kernel and Run All Cells* (Colab: *Runtime → Restart
#    session and run all*). Every test cell should print "visible tests passed".
# 2. Save it (*File → Save*, Ctrl+S).
# 3. Run the cell below. It writes `submission.zip` with exactly the three files that grading reads
#    (`transformer_lab.ipynb`, `checkpoints/reverse.ckpt`, `checkpoints/anomaly.ckpt`), taken from
#    this notebook's folder and `CHECKPOINT_DIR`, and says what is missing.
#    * **On your own machine** it finds `transformer_lab.ipynb` next to the checkpoints (as last
#      saved: save first). Hand in `submission.zip`.
#    * **On Colab** the notebook lives in your Google Drive, not in `/content`, so the zip holds only
#      the checkpoints at first. Download the notebook (*File → Download → Download .ipynb*),
#      upload that file into `/content` (*Files* pane → *Upload to session storage*), run the cell
#      below again, then download `submission.zip` (*Files* pane → ⋮ next to it → *Download*) and
#      hand it in. (A notebook file with another name: `make_submission(notebook="that name.ipynb")`.)
#
# (If your course collects the assignment folder instead, with nbgrader's *Assignment List*, the
# folder must hold the notebook and `checkpoints/` with these two files.)

# %%
#@cell given submission
def make_submission(out="submission.zip", notebook="transformer_lab.ipynb", checkpoint_dir=None):
    """Write the zip ``out`` with exactly what grading reads; return the names it holds.

    ``notebook`` (this notebook as last saved, stored as ``transformer_lab.ipynb``) when that file
    exists, and ``checkpoints/reverse.ckpt``, ``checkpoints/anomaly.ckpt`` from ``checkpoint_dir``
    (default ``CHECKPOINT_DIR``). Nothing else goes in: no logs, no data, no other checkpoint.
    """
    import zipfile

    folder = CHECKPOINT_DIR if checkpoint_dir is None else checkpoint_dir
    wanted = {"transformer_lab.ipynb": notebook, **{f"checkpoints/{n}": os.path.join(folder, n) for n in CHECKPOINT_FILES}}
    found = {name: path for name, path in wanted.items() if os.path.isfile(path)}
    if found:
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, path in found.items():
                zf.write(path, name)
        print(f"wrote {os.path.abspath(out)} with {', '.join(found)}")
    for name in sorted(wanted.keys() - found.keys()):
        print(f"missing: {name} ({os.path.abspath(wanted[name])} not found)")
    return sorted(found)


if not GRADING:
    submission_files = make_submission()

# %% [markdown]
# ## Conclusion
#
# You built multi-head attention from the scaled dot product, stacked it into a Transformer encoder
# with residual connections and layer normalisation, gave it positions with sinusoidal encodings,
# trained it with warm-up, and used it on a sequence task (reversal) and a set task (anomaly
# detection), where leaving out the positional encoding makes the model permutation-equivariant.
#
# *Adapted from Phillip Lippe, "Tutorial 6: Transformers and Multi-Head Attention", UvA Deep
# Learning Tutorials (CC BY-SA 4.0).*
