"""Submissions for the autograder's tests, all derived from the source notebook by small text edits.

* ``BUGS``: realistic student bugs, each in one part, with the symptom its feedback must name (each
  part's in its own test file, ``tests/parts/test_<part>.py``);
* ``CORRECT``: correct solutions written differently (einsum, SDPA, another reshape, ...);
* ``HOSTILE``: submissions that attack or break the grader.

Every edit must match exactly once in its cell (``grade_id``), so a change of the source notebook
that breaks a fixture fails loudly instead of silently testing nothing. Entries whose cell is not
(yet) in the notebook are skipped and counted.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "source" / "transformer_lab" / "transformer_lab.ipynb"
RELEASE = ROOT / "release" / "transformer_lab" / "transformer_lab.ipynb"


class EditError(AssertionError):
    pass


def load_source():
    return nbformat.read(SOURCE, as_version=4)


def grade_ids(nb) -> set[str]:
    return {c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells} - {None}


def graded_parts(nb) -> list[str]:
    from lab_autograder.parts import PART_ORDER

    ids = grade_ids(nb)
    return [p for p in PART_ORDER if f"test_{p}" in ids]


def apply_edits(nb, edits):
    """``edits``: list of ``(grade_id, old, new)``; each ``old`` must occur exactly once in that cell."""
    nb = copy.deepcopy(nb)
    for gid, old, new in edits:
        cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid]
        if not cells:
            raise KeyError(gid)
        n = cells[0].source.count(old)
        if n != 1:
            raise EditError(f"edit of {gid}: {old!r} occurs {n} times (the source notebook changed?)")
        cells[0].source = cells[0].source.replace(old, new)
    return nb


def add_cells(nb, sources, where="end"):
    nb = copy.deepcopy(nb)
    new = [nbformat.v4.new_code_cell(s) for s in sources]
    if where == "start":  # right after the imports/setup cells
        idx = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "setup") + 1
        nb.cells[idx:idx] = new
    else:
        nb.cells.extend(new)
    return nb


def release_like(nb=None):
    """The real release if it exists, else the source with every solution region replaced by a stub."""
    if nb is None and RELEASE.is_file():
        return nbformat.read(RELEASE, as_version=4)
    nb = copy.deepcopy(nb or load_source())
    pat = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION[ \t]*\n?", re.S | re.M)
    for c in nb.cells:
        if c.cell_type == "code":
            c.source = pat.sub(lambda m: f"{m.group(1)}raise NotImplementedError()\n", c.source)
            c.source = re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n?", "", c.source, flags=re.S)
    return nb


def write_submission(root: Path, name: str, nb, checkpoints: dict | None = None, raw: bytes | None = None) -> Path:
    d = Path(root) / name
    d.mkdir(parents=True, exist_ok=True)
    path = d / "transformer_lab.ipynb"
    if raw is not None:
        path.write_bytes(raw)
    else:
        nbformat.write(nb, path)
    if checkpoints:
        (d / "checkpoints").mkdir(exist_ok=True)
        for fname, src in checkpoints.items():
            if isinstance(src, bytes):
                (d / "checkpoints" / fname).write_bytes(src)
            else:
                shutil.copyfile(src, d / "checkpoints" / fname)
    return d


@dataclass
class Variant:
    id: str
    part: str  # the part that must lose points ("" for correct / hostile entries)
    edits: list = field(default_factory=list)
    symptom: str = ""  # regex the part's feedback must match (case-insensitive)
    also: tuple = ()  # other parts allowed to lose points (e.g. the training run of a crashing loss)
    insert: list = field(default_factory=list)  # (grade_id, source): a new code cell right after that one
    checkpoint_edit: object = None  # f(name, bytes) -> bytes: the checkpoints this variant's student submits

    def cells(self):
        return {gid for gid, _, _ in self.edits} | {gid for gid, _ in self.insert}

    def apply(self, nb):
        """The notebook with this variant's edits and inserted cells."""
        nb = apply_edits(nb, self.edits)
        for gid, src in self.insert:
            i = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == gid)
            nb.cells.insert(i + 1, nbformat.v4.new_code_cell(src))
        return nb


SDP, MHA, BLK, PE, WU = "impl_scaled_dot_product", "impl_multihead_attention", "impl_encoder_block", "impl_positional_encoding", "impl_warmup_factor"
RL, TR, AP, AL, TA = "impl_reverse_loss", "impl_train_reverse", "impl_attention_plot", "impl_anomaly_loss", "impl_train_anomaly"
PV = "impl_prediction_view"

#: the catalogued bugs, one test file per part: ``tests/parts/test_<part>.py`` holds its part's ``BUGS``
PARTS_TESTS = ROOT / "tests" / "parts"


def all_bugs() -> list:
    """Every part's bugs, in the registry's order, read from the parts' test files (they import this
    module, so it cannot import them while it loads)."""
    import importlib
    import sys

    from lab_autograder.registry import PARTS

    if str(PARTS_TESTS) not in sys.path:
        sys.path.insert(0, str(PARTS_TESTS))
    bugs = [b for part in PARTS for b in importlib.import_module(f"test_{part}").BUGS]
    assert len({b.id for b in bugs}) == len(bugs), "two catalogued bugs share an id"
    return bugs


def __getattr__(name):
    """``catalog.BUGS``: ``all_bugs()``, gathered on first use."""
    if name != "BUGS":
        raise AttributeError(name)
    globals()["BUGS"] = bugs = all_bugs()
    return bugs

def as_embedding_checkpoint(name: str, data: bytes) -> bytes:
    """The reverse checkpoint as a model with an ``nn.Embedding`` input layer would hold it: the same
    function (``E = W^T + b``), other parameter shapes."""
    import io

    import torch

    if name != "reverse.ckpt":
        return data
    ck = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    sd = ck["state_dict"]
    sd["input_net.1.weight"] = (sd["input_net.1.weight"].t() + sd.pop("input_net.1.bias")).contiguous()
    buf = io.BytesIO()
    torch.save(ck, buf)
    return buf.getvalue()


#: the tutorial's own code (or close to it) for each part, each cell run right after the part's solution
#: cell so that it replaces the reference's definitions
TUTORIAL_CODE = {
    SDP: """
def scaled_dot_product(q, k, v, mask=None):
    d_k = q.size()[-1]
    attn_logits = torch.einsum("...qd,...kd->...qk", q, k) / d_k ** 0.5
    if mask is not None:
        attn_logits = attn_logits.masked_fill(mask == 0, torch.finfo(attn_logits.dtype).min)
    attention = attn_logits.softmax(-1)
    return attention @ v, attention
""",
    MHA: """
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
    BLK: """
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
    PE: """
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
    WU: """
def warmup_cosine_factor(step, warmup, max_iters):
    lr_factor = 0.5 * (1 + np.cos(np.pi * step / max_iters))
    if step <= warmup:
        lr_factor *= step * 1.0 / warmup
    return lr_factor
""",
    RL: """
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
    AP: """
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
    AL: """
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
    PV: """
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

CORRECT = [
    # issue 19, item 9: the lab sheet's other input layer, "a learned embedding ... nn.Embedding"
    Variant("embedding_input_layer", "", [
        (RL, '    task_name = "reverse"\n',
         '    task_name = "reverse"\n\n    def __init__(self, *args, **kwargs):\n'
         "        super().__init__(*args, **kwargs)\n"
         "        self.input_net[1] = nn.Embedding(self.hparams.num_classes, self.hparams.model_dim)\n"),
        (RL, "            x = F.one_hot(x, num_classes=self.hparams.num_classes).to(self.input_net[1].weight.dtype)\n",
         "            x = self.input_net(x)  # token ids go straight into the embedding\n"
         "            return self.positional_encoding(x) if add_positional_encoding else x\n"),
    ], checkpoint_edit=as_embedding_checkpoint),
    # issue 19, item 9: honest students whose notebooks IPython runs as written
    Variant("black_style_continuation", "", [
        (SDP, "attention = F.softmax(attn_logits, dim=-1)",
         "assert (attn_logits.shape[-1]\n            != 0), 'no keys'  # a black-style line that starts with !=\n"
         "    attention = F.softmax(attn_logits, dim=-1)"),
    ]),
    Variant("writefile_helper_module", "", [
        (WU, "def warmup_cosine_factor(step: int, warmup: int, max_iters: int) -> float:",
         "%%writefile warmup_impl.py\nimport math\n\n\ndef warmup_cosine_factor(step: int, warmup: int, max_iters: int) -> float:"),
    ], insert=[(WU, "from warmup_impl import warmup_cosine_factor  # the module the cell above wrote\n")]),
    Variant("alt_einsum_view_min", "", [
        (SDP, "attn_logits = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d_k)",
         "attn_logits = torch.einsum('...qd,...kd->...qk', q, k) * d_k ** -0.5"),
        (SDP, "values = torch.matmul(attention, v)", "values = torch.einsum('...qk,...kd->...qd', attention, v)"),
        (MHA, "qkv = self.qkv_proj(x).reshape(B, T, self.num_heads, 3 * self.head_dim)\n",
         "qkv = self.qkv_proj(x).view(B, T, self.num_heads, 3, self.head_dim)\n"),
        (MHA, "q, k, v = qkv.transpose(1, 2).chunk(3, dim=-1)", "q, k, v = qkv.permute(3, 0, 2, 1, 4).unbind(0)"),
        (MHA, "values = values.transpose(1, 2).reshape(B, T, self.embed_dim)",
         "values = values.permute(0, 2, 1, 3).contiguous().view(B, T, -1)"),
        (WU, "    factor = 0.5 * (1 + math.cos(math.pi * step / max_iters))\n    if step <= warmup:\n        factor *= step / warmup\n    return factor",
         "    return 0.5 * (1 + math.cos(math.pi * step / max_iters)) * min(1.0, step / warmup)"),
    ]),
    Variant("alt_sdpa_pow_permute_loss", "", [
        (SDP, "values = torch.matmul(attention, v)",
         "values = F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else (mask != 0))"),
        (PE, "div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))",
         "div_term = 1.0 / (10000.0 ** (torch.arange(0, d_model, 2).float() / d_model))"),
        (RL, "loss = F.cross_entropy(preds.view(-1, preds.size(-1)), labels.view(-1))",
         "loss = F.cross_entropy(preds.transpose(1, 2), labels)"),  # classes on dim 1: the same mean
    ]),
    Variant("alt_tutorial_code", "", insert=list(TUTORIAL_CODE.items())),
    Variant("alt_explicit_heads_and_block", "", [
        (MHA, "q, k, v = qkv.transpose(1, 2).chunk(3, dim=-1)  # each (B, nh, T, hs)",
         "q = qkv[..., : self.head_dim].permute(0, 2, 1, 3)\n"
         "        k = qkv[..., self.head_dim : 2 * self.head_dim].permute(0, 2, 1, 3)\n"
         "        v = qkv[..., 2 * self.head_dim :].permute(0, 2, 1, 3)"),
        (MHA, "values, attention = scaled_dot_product(q, k, v, mask=mask)",
         "if return_attention or mask is not None:\n"
         "            values, attention = scaled_dot_product(q, k, v, mask=mask)\n"
         "        else:  # PyTorch's fused kernel: the same maths, no weights\n"
         "            values = F.scaled_dot_product_attention(q, k, v)"),
        (BLK, "x = self.norm1(x + self.dropout(self.self_attn(x, mask=mask)))",
         "attn_out = self.self_attn(x, mask=mask)\n        x = x + self.dropout(attn_out)\n        x = self.norm1(x)"),
        (AP, "ax.imshow(maps[row][col], origin=\"lower\", vmin=0)", "ax.matshow(maps[row][col], vmin=0)"),
    ]),
]

#: code that a hostile submission adds as extra cells (some need the marker/out paths formatted in)
HOSTILE_CELLS = {
    "infinite_loop_cell": ["while True:\n    pass\n"],
    "infinite_loop_in_function": [],  # built by an edit below
    "signal_proof_hang": ["import signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
                          "signal.setitimer = lambda *a, **k: None\nwhile True:\n    time.sleep(0.01)\n"],
    "memory_bomb": ["_hog = []\nwhile True:\n    _hog.append(bytearray(256 * 2**20))\n"],
    "memory_bomb_tensor": ["import torch\n_x = torch.ones(2**40)\n"],
    "process_flood": ["import os, time\n_kids = 0\nfor _i in range(500):\n    try:\n        _pid = os.fork()\n"
                      "    except OSError:\n        break\n    if _pid == 0:\n        time.sleep(120)\n        os._exit(0)\n"
                      "    _kids += 1\nprint('forked', _kids)\n"],
    "sys_exit": ["import sys\nsys.exit(3)\n"],
    "os_exit": ["import os\nos._exit(0)\n"],
}

#: hostile cells added to the *release* (no solutions): they must not earn a single point.
HOSTILE_RELEASE_CELLS = {
    "monkeypatch_checks": [
        "import torch, numpy\n"
        "torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n"
        "torch.testing.assert_close = lambda *a, **k: None\nnumpy.allclose = lambda *a, **k: True\n"
        "torch.Tensor.__eq__ = lambda self, other: torch.ones_like(self, dtype=torch.bool)\n"
        "def scaled_dot_product(q, k, v, mask=None):\n    return torch.zeros_like(v), torch.zeros(q.shape[:-1] + k.shape[-2:-1])\n"
        "print('PASSED all tests')\n"],
    "forge_outputs": [
        "import os, glob, torch\n"
        "for _d in glob.glob('/tmp/lab_autograder_*/*/out') + ['out']:\n"
        "    try:\n        os.makedirs(_d, exist_ok=True)\n"
        "        for _p in ['scaled_dot_product', 'train_reverse', 'warmup_factor']:\n"
        "            torch.save({'passed': True, 'score': 100.0}, os.path.join(_d, _p + '.pt'))\n"
        "    except Exception as e:\n        print(e)\n"],
    "read_reference": [
        "import sys, glob\n"
        "for _p in glob.glob('/autograder/source/reference') + [@REF@]:  # the grader's own copies\n"
        "    sys.path.insert(0, _p)\n"
        "try:\n    from transformer_lab import *  # the instructor's solution\n"
        "    from transformer_lab.positional import sinusoidal_table\n"
        "    from transformer_lab.scheduler import warmup_cosine_factor\n"
        "    from transformer_lab.plots import plot_attention_maps\n"
        "    print('READ THE REFERENCE')\nexcept Exception as e:\n    print('blocked:', e)\n"
        "try:\n    _src = open(@REF@ + '/transformer_lab/attention.py').read()\n"
        "    exec(compile(_src.replace('from ._checks import check_mask, check_tensor', 'check_tensor = check_mask = lambda *a, **k: None'), 'ref', 'exec'))\n"
        "    print('EXEC THE REFERENCE')\nexcept Exception as e:\n    print('blocked:', e)\n"],
    "write_output_folder": [
        "import json, os\n"
        "for _p in [@OUT@ + '/@NAME@/results.json', @OUT@ + '/grades.csv', '/autograder/results/results.json']:\n"
        "    try:\n        os.makedirs(os.path.dirname(_p), exist_ok=True)\n"
        "        open(_p, 'w').write(json.dumps({'score': 1000, 'tests': []}))\n"
        "        print('WROTE', _p)\n    except Exception as e:\n        print('blocked:', e)\n"],
}


#: Attacks on the grader's integrity (issue 9), one entry per class of attack. Each is
#: ``(base, cells, where)``: the cells are added to the solution (``base == "solution"``, so every
#: point lost is the attack's doing) or to the release (nothing to earn); ``@CANARY@`` is a
#: world-writable folder outside the job whose files must never change, ``@ROOT@`` the checkout,
#: ``@OUT@`` the output folder. The tests assert each case's score (``INTEGRITY_SCORES``).
_WORKER = ("import os as _os, sys as _sys\n_w = _sys.modules['worker.run']  # the worker's run: _write, _SAVE\n"
           "_paths = dict(zip(('in', 'work', 'out'), map(_os.path.abspath, _sys.argv[1:4])))  # the worker's argv\n")
INTEGRITY = {
    # 1. root must never write, read or follow through a path the worker controls
    "link_job_files": ("solution", [
        "import os\n" + _WORKER +
        "_canary = @CANARY@ + '/victim.txt'\n"
        "_dirs = [_paths.get(k, '') for k in ('in', 'out', 'work')] + [os.getcwd()]\n"
        "for _d in _dirs:\n"
        "    for _n in ['job.json', 'inputs.pt', 'worker/run.py', '_cells.pt', 'scaled_dot_product.pt', 'results.json']:\n"
        "        _p = os.path.join(_d, _n)\n"
        "        try:\n            if os.path.lexists(_p):\n                os.unlink(_p)\n"
        "            os.symlink(_canary, _p)\n        except OSError as e:\n            print('blocked', e)\n"
        "try:\n    os.mkfifo(os.path.join(_paths['out'], 'multihead_attention.pt'))\nexcept OSError as e:\n    print(e)\n"
        "_job = os.path.dirname(_paths['out'])\n"
        "for _n in ['job.json', 'in', 'log-2', 'out-2', 'work-2', 'root']:\n"
        "    try:\n        os.symlink(_canary, os.path.join(_job, _n))\n    except OSError as e:\n        print('blocked', e)\n"
        "os._exit(1)  # crash: the grader relaunches\n"], "start"),
    "link_outputs": ("solution", [
        "import os\n" + _WORKER +
        "def _evil_write(*args):  # every output file (args: ..., name, out) becomes a link to a host file\n"
        "    os.symlink(@CANARY@ + '/victim.txt', os.path.join(_paths['out'], args[-2] + '.pt'))\n"
        "_w._write = _evil_write\n"], "end"),
    # 2. no way to the solution: the checkout, the stand-ins, a linked notebook (see build_integrity)
    "find_solution_files": ("release", [
        "import os, glob, subprocess\n_found = []\n"
        "for _p in ['/proc/self/mountinfo', '/proc/1/mountinfo', @ROOT@ + '/source/transformer_lab/transformer_lab.ipynb',\n"
        "           @ROOT@ + '/.git/HEAD', @ROOT@ + '/reference/transformer_lab/attention.py', '/autograder/source']:\n"
        "    try:\n        _found.append((_p, open(_p).read(2000)))\n    except OSError as e:\n        print('blocked', _p, e)\n"
        "for _pat in ['/*/*/.git', '/*/*/runs/*', '/*/*/*/transformer_lab.ipynb', '/root/*', '/home/*', '/work/*']:\n"
        "    _found += [(_p, '') for _p in glob.glob(_pat)]\n"
        "try:\n    _r = subprocess.run(['git', '-C', @ROOT@, 'show', 'HEAD:source/transformer_lab/transformer_lab.ipynb'],\n"
        "                        capture_output=True, text=True, timeout=10)\n    _found.append(('git', _r.stdout[:2000]))\n"
        "except Exception as e:\n    print('blocked', e)\n"
        "import json\nfor _p, _txt in _found:\n"
        "    if _txt.lstrip().startswith('{'):\n        try:\n"
        "            for _c in json.loads(_txt)['cells']:\n"
        "                if _c['cell_type'] == 'code':\n                    exec(''.join(_c['source']))\n"
        "        except Exception as e:\n            print('could not use', _p, e)\n"
        "print('FOUND', [p for p, _ in _found])\n"], "end"),
    "steal_oracles": ("release", [
        "import gc, sys\nimport torch.nn as nn\n"
        "def _stand_in(o):  # compiled from the grader's oracles.py (the worker names that code '<oracles>')\n"
        "    code = getattr(o, '__code__', None) or getattr(getattr(o, 'forward', None), '__code__', None)\n"
        "    return code is not None and code.co_filename == '<oracles>'\n"
        "def _oracle(name):  # anything correct this process holds: the worker's module, frames, the heap\n"
        "    _mods = [m for n, m in list(sys.modules.items()) if n.split('.')[0] in ('worker', '__main__')]\n"
        "    for o in [v for m in _mods for v in list(vars(m).values())] + gc.get_objects():\n"
        "        if isinstance(o, dict) and callable(o.get(name)) and _stand_in(o[name]):\n"
        "            return o[name]\n"
        "        if callable(o) and getattr(o, '__name__', '') == name and _stand_in(o):\n"
        "            return o\n"
        "    f = sys._getframe(1)\n    while f is not None:\n"
        "        for v in list(f.f_locals.values()):\n"
        "            if isinstance(v, dict) and callable(v.get(name)) and _stand_in(v[name]):\n"
        "                return v[name]\n"
        "        f = f.f_back\n"
        "    raise NotImplementedError('nothing to steal')\n"
        "def scaled_dot_product(q, k, v, mask=None):\n    return _oracle('scaled_dot_product')(q, k, v, mask=mask)\n"
        "def sinusoidal_table(max_len, d_model):\n    return _oracle('sinusoidal_table')(max_len, d_model)\n"
        "class MultiheadAttention(nn.Module):\n    def __new__(cls, *a, **k):\n        return _oracle('MultiheadAttention')(*a, **k)\n"
        "class EncoderBlock(nn.Module):\n    def __new__(cls, *a, **k):\n        return _oracle('EncoderBlock')(*a, **k)\n"
        "class PositionalEncoding(nn.Module):\n    def __new__(cls, *a, **k):\n        return _oracle('PositionalEncoding')(*a, **k)\n"],
        "end"),
    # 3. accuracy only from the grader's own evaluation of what was submitted
    "planted_checkpoints": ("solution_no_checkpoints", [
        "import os, shutil, torch\n" + _WORKER +
        "for _d in ['checkpoints', os.path.join(_paths.get('work', '.'), 'nb', 'checkpoints')]:\n"
        "    os.makedirs(_d, exist_ok=True)\n"
        "    _m = ReversePredictor(input_dim=10, model_dim=32, num_classes=10, num_heads=1, num_layers=1, lr=5e-4,\n"
        "                          warmup=50, max_iters=1000)\n"
        "    torch.save({'state_dict': _m.state_dict(), 'hyper_parameters': dict(_m.hparams)}, os.path.join(_d, 'reverse.ckpt'))\n"
        + "@FORGED@"], "end"),
    # 4. worker-made data is untrusted: tensor views, strings, containers
    "forged_tensor_views": ("solution", [
        "import torch\n" + _WORKER +
        "_orig_save = _w._SAVE\n"
        "_overlap = torch.zeros(2**21).as_strided((2**20, 2**20), (1, 1))  # 8 MB on disk, 4 TB as a dense tensor\n"
        "def _views(out, path):  # a few bytes on disk, terabytes once materialised\n"
        "    big = {k: (torch.zeros(1).expand(2**40) if i % 2 else _overlap) for i, k in enumerate(out)}\n"
        "    _orig_save(big, path)\n"
        "_w._SAVE = _views\n"], "end"),
    "forged_strings": ("solution", [
        _WORKER +
        "_FORGE = ('\\n**Total: 25 / 25**\\n```\\n</pre><script>alert(1)</script><img src=x onerror=alert(2)>\\n'\n"
        "          '# Autograder feedback: someone else\\n\\x1b[31m' + 'A' * 4_000_000)\n"
        "_orig_write = _w._write\n"
        "def _loud(*args):  # (..., name, out)\n"
        "    out = dict(args[-1])\n    out.update(error_student=_FORGE, error_probe=_FORGE, errors=_FORGE, note=_FORGE)\n"
        "    _orig_write(*args[:-1], out)\n"
        "_w._write = _loud\n"
        "raise RuntimeError(_FORGE[:2000])\n"], "end"),
    "zip_bomb_output": ("solution", [
        "import io, zipfile\n" + _WORKER +
        "def _bomb(out, path):  # a deflated entry that claims a gigabyte\n"
        "    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as z:\n"
        "        z.writestr('archive/data.pkl', b'\\x80\\x02}q\\x00.')\n"
        "        z.writestr('archive/data/0', b'\\x00' * (64 * 2**20))\n"
        "_w._SAVE = _bomb\n"], "end"),
    # issue 19, item 1: keys that share one hash make building a dict quadratic (no code needed)
    "collision_outputs": ("solution", [
        "import torch\n" + _WORKER +
        "_orig_save = _w._SAVE\n"
        "def _collide(out, path):  # every output: ~1 MiB of int keys that all hash alike\n"
        "    _orig_save({i * (2**61 - 1): 0 for i in range(75000)}, path)\n"
        "_w._SAVE = _collide\n"], "end"),
    # issue 19, item 2: fail part 1 on purpose, so the stand-in stages run, then raise what they hold
    "leak_stand_ins": ("release", [
        "import base64, gc, glob, inspect, os, sys, zlib\n"
        "def _loot():\n"
        "    found = []\n"
        "    for _p in glob.glob('/job/in/*') + glob.glob(os.path.join(os.path.dirname(sys.argv[1] if len(sys.argv) > 1 "
        "else '.'), 'in', '*')):\n"
        "        try:\n            found.append(open(_p).read())\n        except Exception as e:\n"
        "            found.append(f'{_p}: {e}')\n"
        "    for _o in gc.get_objects():\n"
        "        if callable(_o) and getattr(getattr(_o, '__code__', None), 'co_filename', '') == '<oracles>':\n"
        "            try:\n                found.append(inspect.getsource(_o))\n            except Exception as e:\n"
        "                found.append(repr(e))\n"
        "    blob = '\\n'.join(found)\n"
        "    return blob + ' Z:' + base64.b64encode(zlib.compress(blob.encode())).decode()\n"
        "def train_reverse(*args, **kwargs):\n    raise RuntimeError('LEAK ' + _loot())\n"
        "def train_anomaly(*args, **kwargs):\n    raise RuntimeError('LEAK ' + _loot())\n"], "end"),
    # 5. nothing of the grader's machine in the feedback
    "leak_in_errors": ("release", [
        "import os, glob\n_seen = []\n"
        "for _p in ['/proc/self/mountinfo', '/etc/passwd', '/etc/shadow', @ROOT@ + '/README.md']:\n"
        "    try:\n        _seen.append(open(_p).read(3000))\n    except OSError as e:\n        _seen.append(str(e))\n"
        "_seen += [str(os.listdir(d)) for d in ('/', '/job', '/etc') if os.path.isdir(d)]\n"
        "_seen.append(str(dict(os.environ)))\n"
        "raise RuntimeError('LEAK ' + ' | '.join(_seen))\n"], "end"),
    # 6. scratch space is private to a job and does not outlive it
    "scratch_a": ("solution", [
        "import os\nfor _d in ['/tmp', '/var/tmp', '/dev/shm', os.environ.get('TMPDIR', '/tmp')]:\n"
        "    try:\n        open(os.path.join(_d, 'ag_scratch_@NAME@'), 'w').write('secret of @NAME@')\n"
        "    except OSError as e:\n        print(e)\n"
        "_others = [os.path.join(d, n) for d in ['/tmp', '/var/tmp', '/dev/shm'] if os.path.isdir(d)\n"
        "           for n in os.listdir(d) if n.startswith('ag_scratch_') and '@NAME@' not in n]\n"
        "if _others:\n    raise RuntimeError('SCRATCH ' + str(_others))\n"], "end"),
}
INTEGRITY["scratch_b"] = INTEGRITY["scratch_a"]
#: the score each integrity case must get (solution-based cases keep every point they earned)
#: 4 = the two checkpoints' load + accuracy points, which come from the grader's own evaluation of
#: the submitted files whatever the worker reports; 18 = the forged forward costs the reverse loss and
#: training run too, and no submitted checkpoint means no load or accuracy points for either task.
INTEGRITY_SCORES = {"link_job_files": 25, "link_outputs": 4, "find_solution_files": 0, "steal_oracles": 0,
                    "planted_checkpoints": 18, "forged_tensor_views": 4, "forged_strings": 25, "zip_bomb_output": 4,
                    "leak_in_errors": 0, "scratch_a": 25, "scratch_b": 25, "linked_notebook": 0,
                    "collision_outputs": 4, "collision_checkpoints": 21, "leak_stand_ins": 0,
                    "draft_beside_solution": 25,
                    "linked_checkpoints": 0, "linked_folder": 0}
INTEGRITY_CLASSES = {
    "root writes through worker paths": ["link_job_files", "link_outputs"],
    "a way to the solution": ["find_solution_files", "steal_oracles", "linked_notebook", "linked_checkpoints",
                              "linked_folder"],
    "accuracy without a trusted check": ["planted_checkpoints"],
    "untrusted worker data": ["forged_tensor_views", "forged_strings", "zip_bomb_output"],
    "pickles that cost the grader": ["collision_outputs", "collision_checkpoints"],
    "information leaks": ["leak_in_errors", "leak_stand_ins"],
    "shared scratch space": ["scratch_a", "scratch_b"],
    "honest students charged": ["draft_beside_solution"],
}


def build_integrity(root: Path, ckpts: dict, *, out: Path, canary: Path) -> dict:
    """Write the integrity cases under ``root``; returns ``{name: ("integrity", None)}``."""
    nb = load_source()
    cks = {f"{k}.ckpt": v for k, v in ckpts.items() if v}
    made = {}

    def fill(c, name):
        return (c.replace("@CANARY@", repr(str(canary))).replace("@ROOT@", repr(str(ROOT))).replace("@OUT@", repr(str(out)))
                .replace("@NAME@", name).replace("@FORGED@", FORGED_FORWARD))
    for name, (base, cells, where) in INTEGRITY.items():
        src = release_like() if base == "release" else nb
        write_submission(root, name, add_cells(src, [fill(c, name) for c in cells], where),
                         cks if base == "solution" else {})
        made[name] = ("integrity", None)
    # links out of the submission: to the grader's solution notebook and trained checkpoints
    d = root / "linked_notebook"
    d.mkdir(parents=True)
    (d / "transformer_lab.ipynb").symlink_to(SOURCE)
    if cks:
        (d / "checkpoints").symlink_to(Path(next(iter(cks.values()))).parent)
    d = write_submission(root, "linked_checkpoints", release_like(), {})
    (d / "checkpoints").mkdir(exist_ok=True)
    for fname, src in cks.items():
        (d / "checkpoints" / fname).symlink_to(src)
    d = root / "linked_folder"
    d.mkdir(parents=True)
    (d / "work").symlink_to(SOURCE.parent, target_is_directory=True)
    for name in ("linked_notebook", "linked_checkpoints", "linked_folder"):
        made[name] = ("integrity", None)
    write_submission(root, "collision_checkpoints", nb, {f: collision_checkpoint() for f in cks})
    made["collision_checkpoints"] = ("integrity", None)
    d = write_submission(root, "draft_beside_solution", nb, cks)  # the top-level notebook is the one graded
    write_submission(d, "drafts", release_like(), {})
    made["draft_beside_solution"] = ("integrity", None)
    return made


def collision_checkpoint(n: int = 75000) -> bytes:
    """~1 MiB: a state_dict of ``n`` int keys that share one hash; no code, just hours of dict building."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save({"state_dict": {i * (2**61 - 1): 0 for i in range(n)}, "hyper_parameters": {}}, buf)
    return buf.getvalue()


#: caught inside the worker (exception, SIGALRM, MemoryError, NPROC): one notebook holds them all
SOFT_HOSTILE = ("infinite_loop_cell", "memory_bomb", "memory_bomb_tensor", "process_flood", "sys_exit")
#: attacks on the checks, added together to the release
ATTACKS = ("monkeypatch_checks", "forge_outputs", "write_output_folder")


def evil_checkpoint(marker: Path) -> bytes:
    """A .ckpt whose pickle would create ``marker`` when unpickled without weights_only."""
    import io
    import os

    import torch

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    buf = io.BytesIO()
    torch.save({"state_dict": {"x": torch.zeros(1)}, "hyper_parameters": {"evil": Evil()}}, buf)
    return buf.getvalue()


FORGED_FORWARD = (
    "def _cheat(self, x, *args, **kwargs):  # 'predicts' by reversing the input, ignoring the weights\n"
    "    ids = x.argmax(-1) if x.is_floating_point() else x\n"
    "    return F.one_hot(ids.flip(-1), self.hparams.num_classes).float() * 10\n"
    "ReversePredictor.forward = _cheat\n")


def untrained_reverse_checkpoint() -> bytes:
    """A Lightning-format checkpoint of an untrained reverse model (for the forged-predictions fixture)."""
    import io

    import torch
    from transformer_lab import ReversePredictor

    torch.manual_seed(0)
    hp = dict(input_dim=10, model_dim=32, num_classes=10, num_heads=1, num_layers=1, lr=5e-4, warmup=50,
              max_iters=1000, dropout=0.0, input_dropout=0.0)
    buf = io.BytesIO()
    torch.save({"state_dict": ReversePredictor(**hp).state_dict(), "hyper_parameters": hp, "epoch": 0}, buf)
    return buf.getvalue()


def malformed_notebooks() -> dict[str, bytes]:
    src = SOURCE.read_bytes()
    return {
        "malformed_truncated": src[: len(src) // 2],
        "malformed_not_json": b"this is not a notebook\n\x00\xff",
        "malformed_no_cells": json.dumps({"metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode(),
        "malformed_bad_cells": json.dumps({"cells": [{"cell_type": "code", "source": 42}, "junk", {"cell_type": "code"}],
                                           "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode(),
    }


def infinite_loop_in_function():
    return [(SDP, "    d_k = q.size(-1)\n", "    d_k = q.size(-1)\n    while True:\n        pass\n")]


def build_all(root: Path, ckpts: dict, *, out: Path, marker: Path, kinds=("solution", "release", "bugs", "correct", "hostile")):
    """Write every fixture submission under ``root``; returns ``{name: (kind, Variant|None)}``.

    ``ckpts``: ``{"reverse": path, "anomaly": path}`` (either may be missing) copied as the
    submission's ``checkpoints/``; ``marker``: the file the evil checkpoint would create.
    """
    nb = load_source()
    present = grade_ids(nb)
    cks = {f"{k}.ckpt": v for k, v in ckpts.items() if v}
    made = {}
    if "solution" in kinds:
        write_submission(root, "solution", nb, cks)
        made["solution"] = ("solution", None)
    if "release" in kinds:
        write_submission(root, "release", release_like(), {})
        made["release"] = ("release", None)
    for kind, entries in (("bugs", all_bugs()), ("correct", CORRECT)):
        if kind not in kinds:
            continue
        for v in entries:
            if not v.cells() <= present:
                continue
            edit = v.checkpoint_edit
            write_submission(root, v.id, v.apply(nb), {n: edit(n, Path(c).read_bytes()) for n, c in cks.items()}
                             if edit else cks)
            made[v.id] = (kind, v)
    if "hostile" in kinds:
        # cells that are caught inside the worker share one notebook; the ones that kill it get their own
        soft = [c for name in SOFT_HOSTILE for c in HOSTILE_CELLS[name]]
        write_submission(root, "hostile_soft", add_cells(nb, soft, "start"), cks)
        made["hostile_soft"] = ("hostile", None)
        for name in ("signal_proof_hang", "os_exit"):
            write_submission(root, name, add_cells(nb, HOSTILE_CELLS[name], "start"), cks)
            made[name] = ("hostile", None)
        write_submission(root, "infinite_loop_in_function", apply_edits(nb, infinite_loop_in_function()), cks)
        made["infinite_loop_in_function"] = ("hostile", None)
        rel = release_like()

        def fill(c, name):
            return c.replace("@REF@", repr(str(ROOT / "reference"))).replace("@OUT@", repr(str(out))).replace("@NAME@", name)
        attacks = [fill(c, "attacks_on_checks") for name in ATTACKS for c in HOSTILE_RELEASE_CELLS[name]]
        write_submission(root, "attacks_on_checks", add_cells(rel, attacks, "end"), {})
        made["attacks_on_checks"] = ("hostile_release", None)
        write_submission(root, "read_reference", add_cells(
            rel, [fill(c, "read_reference") for c in HOSTILE_RELEASE_CELLS["read_reference"]], "end"), {})
        made["read_reference"] = ("hostile_release", None)
        evil = evil_checkpoint(marker)
        write_submission(root, "evil_checkpoint", nb, {"reverse.ckpt": evil, "anomaly.ckpt": evil})
        made["evil_checkpoint"] = ("hostile", None)
        forged = {**cks, "reverse.ckpt": untrained_reverse_checkpoint()}
        write_submission(root, "forged_predictions", add_cells(nb, [FORGED_FORWARD], "end"), forged)
        made["forged_predictions"] = ("hostile", None)
        for name, raw in malformed_notebooks().items():
            write_submission(root, name, None, {}, raw=raw)
            made[name] = ("malformed", None)
        write_submission(root, "missing_function", apply_edits(nb, [(SDP, "def scaled_dot_product(q, k, v, mask=None):",
                                                                     "def _unused(q, k, v, mask=None):")]), cks)
        made["missing_function"] = ("hostile", None)
        renamed = copy.deepcopy(nb)
        for c in renamed.cells:
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade_id") != "test_scaled_dot_product":
                c.source = c.source.replace("scaled_dot_product(", "scaled_dot_prod(")
        write_submission(root, "renamed_function", renamed, cks)
        made["renamed_function"] = ("hostile", None)
    return made
