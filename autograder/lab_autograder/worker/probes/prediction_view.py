"""What the worker runs for the ``prediction_view`` part: the Figure ``plot_anomaly_prediction``
returns, and whether it writes the file it is given."""

import os

from ..harness import need, step
from ._figures import _figure_content


def probe(ns, inp, out):
    fn = need(ns, "plot_anomaly_prediction")
    maps = [m.clone() for m in inp["maps"]]
    args = (inp["indices"].clone(), inp["probs"].clone(), maps)

    def main():
        fig = fn(*args, idx=int(inp["idx"]), images=inp["images"].clone().numpy())
        _figure_content(fig, out, "")

    step(out, "figure", main)

    def saved():
        p = os.path.join(out.work, "prediction_view.png")
        fn(*args, idx=0, path=p)
        out["path_written"] = float(os.path.isfile(p) and os.path.getsize(p) > 0)
        if os.path.isfile(p):
            os.remove(p)

    step(out, "path", saved)
