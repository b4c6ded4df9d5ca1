"""What the worker runs for the ``attention_plot`` part: the Figure ``plot_attention_maps`` returns,
and whether it writes the file it is given."""

import os

from ..harness import need, step
from ._figures import _figure_content


def probe(ns, inp, out):
    fn = need(ns, "plot_attention_maps")
    maps = [m.clone() for m in inp["maps"]]

    def main():
        fig = fn(inp["tokens"].clone(), maps, idx=int(inp["idx"]), path=None)
        _figure_content(fig, out, "")

    step(out, "figure", main)

    def saved():
        p = os.path.join(out.work, "attention_plot.png")
        fn(inp["tokens"].clone(), maps, idx=0, path=p)
        out["path_written"] = float(os.path.isfile(p) and os.path.getsize(p) > 0)
        if os.path.isfile(p):
            os.remove(p)

    step(out, "path", saved)
