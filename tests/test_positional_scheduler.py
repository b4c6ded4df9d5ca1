"""PositionalEncoding values and effect; the warm-up cosine schedule against the tutorial's formula."""

import math

import pytest
import torch

import tutorial6
from transformer_lab import CosineWarmupScheduler, PositionalEncoding, warmup_cosine_factor


def test_table_values():
    pe = PositionalEncoding(d_model=6, max_len=10).pe[0]
    assert pe.shape == (10, 6)
    torch.testing.assert_close(pe[0], torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0]))  # sin(0), cos(0)
    assert pe[1, 0].item() == pytest.approx(math.sin(1.0), abs=1e-6)
    assert pe[1, 1].item() == pytest.approx(math.cos(1.0), abs=1e-6)
    assert pe[3, 2].item() == pytest.approx(math.sin(3 / 10000 ** (2 / 6)), abs=1e-6)
    assert pe[3, 5].item() == pytest.approx(math.cos(3 / 10000 ** (4 / 6)), abs=1e-6)
    torch.testing.assert_close(pe, tutorial6.PositionalEncoding(6, 10).pe[0])


def test_forward_adds_encoding_and_changes_input():
    # Catches an unassigned `x + self.pe[...]` (a bug once shipped in a Lightning demo).
    enc = PositionalEncoding(d_model=8, max_len=20)
    x = torch.zeros(2, 5, 8)
    y = enc(x)
    assert not torch.equal(y, x)
    torch.testing.assert_close(y, enc.pe[:, :5].expand(2, 5, 8))


def test_buffer_is_not_in_state_dict_and_odd_dims_work():
    assert "pe" not in PositionalEncoding(8).state_dict()
    assert PositionalEncoding(7, max_len=4).pe.shape == (1, 4, 7)


def test_bad_input():
    enc = PositionalEncoding(8, max_len=4)
    with pytest.raises(ValueError, match=r"'x'.*\[Batch, SeqLen, 8\]"):
        enc(torch.zeros(2, 3, 6))
    with pytest.raises(ValueError, match="exceeds max_len 4"):
        enc(torch.zeros(1, 5, 8))


def test_factor_curve():
    warmup, total = 100, 2000
    f = [warmup_cosine_factor(s, warmup, total) for s in range(total + 1)]
    assert f[0] == 0
    assert f[warmup] == pytest.approx(0.5 * (1 + math.cos(math.pi * warmup / total)))
    assert max(f) == f[warmup]  # the peak is at the end of warm-up
    assert all(a < b for a, b in zip(f[:warmup], f[1 : warmup + 1]))  # rises linearly
    assert all(a >= b for a, b in zip(f[warmup:], f[warmup + 1 :]))  # then decays
    assert f[total] == pytest.approx(0, abs=1e-12)
    assert f[warmup // 2] == pytest.approx(0.5 * f[warmup] * (0.5 * (1 + math.cos(math.pi * 50 / total)))
                                           / (0.5 * (1 + math.cos(math.pi * warmup / total))))


def test_scheduler_sets_lr_like_the_tutorial():
    def lrs(cls):
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.Adam([p], lr=1e-3)
        sched = cls(opt, warmup=10, max_iters=50)
        out = []
        for _ in range(50):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    ours, tut = lrs(CosineWarmupScheduler), lrs(tutorial6.CosineWarmupScheduler)
    assert ours == pytest.approx(tut, abs=1e-12)
    assert ours[0] == 0 and ours[10] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 10 / 50)))


def test_scheduler_uses_the_public_base_class():
    assert issubclass(CosineWarmupScheduler, torch.optim.lr_scheduler.LRScheduler)
    with pytest.raises(ValueError, match="must be > 0"):
        CosineWarmupScheduler(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1), warmup=0, max_iters=10)
