"""Figures: content of the attention grid, files written by the CLI, actionable CLI errors."""

import matplotlib
import pytest
import torch

from transformer_lab.cli import main
from transformer_lab.plots import plot_attention_maps, plot_lr_schedule, plot_positional_encoding


def test_attention_grid_rows_are_layers_columns_heads_ticks_are_tokens():
    maps = [torch.softmax(torch.randn(2, 3, 5, 5), -1) for _ in range(2)]
    tokens = torch.tensor([[4, 1, 0, 9, 2], [0, 0, 0, 0, 0]])
    fig = plot_attention_maps(tokens, maps, idx=0)
    axes = fig.get_axes()
    assert len(axes) == 2 * 3
    assert [a.get_title() for a in axes[:4]] == ["Layer 1, Head 1", "Layer 1, Head 2", "Layer 1, Head 3", "Layer 2, Head 1"]
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["4", "1", "0", "9", "2"]
    assert axes[4].get_images()[0].get_array().shape == (5, 5)
    torch.testing.assert_close(torch.as_tensor(axes[4].get_images()[0].get_array().data), maps[1][0, 1].float())
    fig = plot_attention_maps(None, [torch.softmax(torch.randn(1, 1, 3, 3), -1)])
    assert [t.get_text() for t in fig.get_axes()[0].get_yticklabels()] == ["0", "1", "2"]
    with pytest.raises(ValueError, match="attn_maps is empty"):
        plot_attention_maps(None, [])


def test_pe_and_lr_figures():
    fig = plot_positional_encoding()
    assert fig.get_axes()[0].get_images()[0].get_array().shape == (48, 96)
    line = plot_lr_schedule(warmup=100, max_iters=2000).get_axes()[0].get_lines()[0]
    y = line.get_ydata()
    assert len(y) == 2000 and y[0] == 0 and y.argmax() == 100


def test_cli_plots_write_png_without_a_display(tmp_path, capsys):
    assert matplotlib.get_backend().lower() == "agg"
    for what in ("pe", "lr"):
        path = tmp_path / "sub" / f"{what}.png"
        assert main(["plot", what, "--out", str(path)]) == 0
        assert path.read_bytes()[:4] == b"\x89PNG"
        assert str(path) in capsys.readouterr().out


def test_cli_usage_error_exits_with_code_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "nosuchtask"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
