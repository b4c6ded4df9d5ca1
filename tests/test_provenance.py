"""Provenance flags (issue 19): copies between classmates and checkpoints from elsewhere are named
for the instructor, whatever their file bytes, and honest independent work is not.

Checkpoints are the reference model's, saved as Lightning saves them; code is the kind students write."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "autograder"))
from lab_autograder import provenance  # noqa: E402
from lab_autograder.provenance import checkpoint_marks, class_flags  # noqa: E402
from transformer_lab.reverse import ReversePredictor  # noqa: E402

HP = dict(input_dim=10, model_dim=32, num_classes=10, num_heads=1, num_layers=1, lr=5e-4, warmup=50,
          max_iters=100)


def _ckpt(seed: int, lightning="2.5.0", task="reverse", tweak=0.0, base: bytes | None = None) -> bytes:
    torch.manual_seed(seed)
    model = ReversePredictor(**HP)
    state = model.state_dict()
    if base is not None:  # a classmate's checkpoint, trained a little further
        state = torch.load(io.BytesIO(base), weights_only=True)["state_dict"]
        state = {k: v + tweak * torch.randn_like(v) * v.std() if v.dim() == 2 else v for k, v in state.items()}
    data = {"state_dict": state, "hyper_parameters": HP, "pytorch-lightning_version": lightning, "epoch": 3}
    if task:
        data[provenance.TASK_KEY] = task
    buf = io.BytesIO()
    torch.save(data, buf)
    return buf.getvalue()


def _record(student, **files):
    return {"student": student, "content_sha256": student, "checkpoints": {f"{k}.ckpt": checkpoint_marks(v)
                                                                              for k, v in files.items()}}


def _kinds(flags):
    return sorted((f["kind"], tuple(f["students"])) for f in flags)


def test_resaving_keeps_the_weights_fingerprint():
    raw = _ckpt(0)
    loaded = torch.load(io.BytesIO(raw), weights_only=True)
    buf = io.BytesIO()
    torch.save({"state_dict": loaded["state_dict"], "hyper_parameters": HP, "extra": "re-saved"}, buf)
    a, b = checkpoint_marks(raw), checkpoint_marks(buf.getvalue())
    assert a["file_sha256"] != b["file_sha256"]
    assert a["weights_sha256"] == b["weights_sha256"] and a["layout"] == b["layout"]
    assert len(a["sketch"]) == provenance.SKETCH_DIM
    assert abs(sum(x * x for x in a["sketch"]) - 1) < 1e-6


def test_copied_and_lightly_trained_checkpoints_are_flagged_independent_ones_not():
    alice = _ckpt(0)
    records = [
        _record("alice", reverse=alice),
        _record("bob", reverse=_ckpt(1, base=alice, tweak=0.05)),  # alice's weights, changed by 5 %
        _record("carol", reverse=alice),  # alice's file as it is
        _record("dave", reverse=_ckpt(2)),  # trained on his own
        _record("erin", reverse=_ckpt(3)),
    ]
    flags = class_flags(records, {}, "")
    assert _kinds(flags) == [
        ("identical weights", ("alice", "carol")),
        ("near-identical weights", ("alice", "bob")),
        ("near-identical weights", ("bob", "carol")),
    ]
    near = next(f for f in flags if f["students"] == ["alice", "bob"])
    assert "cosine 0.99" in near["detail"]


def test_checkpoints_from_elsewhere_are_named(monkeypatch, tmp_path):
    tutorial = _ckpt(4, lightning="1.0.2", task="")  # the tutorial's published files: Lightning 1.0.2, no lab mark
    unmarked = _ckpt(5, task="")
    listed = _ckpt(6)
    published = tmp_path / "published_checkpoints.json"
    published.write_text(json.dumps([{"name": "https://example.org/ReverseTask.ckpt",
                                      "weights_sha256": checkpoint_marks(listed)["weights_sha256"]}]))
    monkeypatch.setattr(provenance, "PUBLISHED", published)
    flags = class_flags([_record("t", reverse=tutorial), _record("u", anomaly=unmarked),
                         _record("p", reverse=listed), _record("ok", reverse=_ckpt(7))], {}, "")
    details = {f["students"][0]: f["detail"] for f in flags if f["kind"] == "checkpoint from elsewhere"}
    assert set(details) == {"t", "u", "p"}
    assert "Lightning 1.0.2" in details["t"] and "lacks the mark" in details["u"]
    assert "https://example.org/ReverseTask.ckpt" in details["p"]


def test_fingerprint_command_adds_a_published_checkpoint(monkeypatch, tmp_path, capsys):
    from lab_autograder.cli import main

    monkeypatch.setattr(provenance, "PUBLISHED", tmp_path / "published.json")
    ck = tmp_path / "ReverseTask.ckpt"
    ck.write_bytes(_ckpt(8, lightning="1.0.2"))
    for _ in range(2):  # the same weights twice: one entry
        assert main(["fingerprint", str(ck), "--name", "tutorial6/ReverseTask.ckpt"]) == 0
    assert provenance.published() == {checkpoint_marks(ck.read_bytes())["weights_sha256"]: "tutorial6/ReverseTask.ckpt"}
    (tmp_path / "not.ckpt").write_bytes(b"PK\x03\x04junk")
    assert main(["fingerprint", str(tmp_path / "not.ckpt"), "--name", "x"]) == 2
    assert "no Lightning state_dict" in capsys.readouterr().err


OWN = '''
def scaled_dot_product(q, k, v, mask=None):
    d_k = q.size()[-1]
    attn_logits = torch.matmul(q, k.transpose(-2, -1))
    attn_logits = attn_logits / math.sqrt(d_k)
    if mask is not None:
        attn_logits = attn_logits.masked_fill(mask == 0, -9e15)
    attention = F.softmax(attn_logits, dim=-1)
    values = torch.matmul(attention, v)
    return values, attention
'''

ALICE = '''
def helper_scores(query, key, scale):
    """My own way: scores, then a numerically careful softmax by hand."""
    raw = torch.einsum("bhqd,bhkd->bhqk", query, key) * scale
    raw = raw - raw.amax(dim=-1, keepdim=True)
    weights = raw.exp()
    return weights / weights.sum(dim=-1, keepdim=True)

def scaled_dot_product(q, k, v, mask=None):
    scale = 1.0 / q.shape[-1] ** 0.5
    if mask is not None:
        big_negative = torch.finfo(q.dtype).min
        q_scores = torch.einsum("bhqd,bhkd->bhqk", q, k) * scale
        q_scores = q_scores.masked_fill(~mask.bool(), big_negative)
        weights = torch.softmax(q_scores, dim=-1)
    else:
        weights = helper_scores(q, k, scale)
    out = torch.einsum("bhqk,bhkd->bhqd", weights, v)
    return out, weights

class MultiheadAttention(nn.Module):
    def __init__(self, input_dim, embed_dim, num_heads):
        super().__init__()
        self.heads, self.width = num_heads, embed_dim // num_heads
        self.joint = nn.Linear(input_dim, 3 * embed_dim)
        self.mix = nn.Linear(embed_dim, embed_dim)
        for layer in (self.joint, self.mix):
            nn.init.xavier_uniform_(layer.weight)
            layer.bias.data.fill_(0)

    def forward(self, x, mask=None, return_attention=False):
        b, n, _ = x.shape
        parts = self.joint(x).reshape(b, n, self.heads, 3 * self.width).permute(0, 2, 1, 3)
        q, k, v = parts.chunk(3, dim=-1)
        values, attention = scaled_dot_product(q, k, v, mask=mask)
        values = values.permute(0, 2, 1, 3).reshape(b, n, self.heads * self.width)
        return (self.mix(values), attention) if return_attention else self.mix(values)
'''


def _rename(code: str) -> str:
    for a, b in (("helper_scores", "my_scores"), ("raw", "logits"), ("weights", "probs"), ("joint", "qkv"),
                 ("mix", "out_proj"), ("big_negative", "neg"), ("width", "hd")):
        code = code.replace(a, b)
    return code


def test_shared_code_is_flagged_through_renaming_the_tutorials_code_is_not():
    boilerplate = OWN  # the tutorial's (reference) code, which everyone may follow
    codes = {"alice": ALICE, "bob": _rename(ALICE) + "\n# tidied up\n", "carol": OWN, "dave": OWN + "\n",
             "erin": _rename(ALICE).replace("einsum", "matmul_like")[:300]}
    flags = class_flags([], codes, boilerplate)
    assert _kinds(flags) == [("near-identical code", ("alice", "bob"))], flags
    assert "copydetect" in flags[0]["detail"]


@pytest.mark.parametrize("n", [60])
def test_the_class_check_scales(n):
    """A class's flags in well under a second per ten students (all pairs are compared)."""
    import time

    codes = {f"s{i}": ALICE.replace("scale", f"scale_{i}").replace("heads", f"h{i % 7}") + f"\nX = {i}\n"
             for i in range(n)}
    t0 = time.perf_counter()
    class_flags([], codes, OWN)
    assert time.perf_counter() - t0 < n / 10
