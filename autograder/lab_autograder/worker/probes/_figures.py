"""What a plot part reports of the Figure a student's function returns: its image axes in reading
order, their pixels, tick labels, texts and bar heights."""

import torch


def _figure_content(fig, out, prefix):
    from matplotlib.figure import Figure

    out[f"{prefix}is_figure"] = float(isinstance(fig, Figure))
    if not isinstance(fig, Figure):
        raise TypeError(f"must return a matplotlib Figure, got {type(fig).__name__}")
    fig.canvas.draw() if hasattr(fig.canvas, "draw") else None
    axes = []
    for ax in fig.axes:
        if ax.images:
            b = ax.get_position()
            arr = ax.images[0].get_array()
            axes.append((round(-b.y0, 3), round(b.x0, 3), arr, ax))
    axes.sort(key=lambda t: (t[0], t[1]))
    out[f"{prefix}n_image_axes"] = float(len(axes))
    rows = sorted({t[0] for t in axes})
    cols = sorted({t[1] for t in axes})
    out[f"{prefix}grid"] = torch.tensor([len(rows), len(cols)], dtype=torch.float64)
    imgs = []
    for _, _, arr, _ in axes:
        a = torch.as_tensor(__import__("numpy").asarray(arr, dtype="float64"))
        imgs.append(a)
    for i, a in enumerate(imgs[:64]):
        out[f"{prefix}image_{i}"] = a
    texts = []
    for _, _, _, ax in axes[:64]:
        texts.append("|".join(t.get_text() for t in ax.get_xticklabels()))
    out[f"{prefix}xticks"] = "\n".join(texts)[:20000]
    all_text = []
    for ax in fig.axes:
        all_text += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()] + [t.get_text() for t in ax.texts]
        all_text += [t.get_text() for t in ax.get_xticklabels()]
        # bar heights (probabilities drawn as bars)
        heights = [float(p.get_height()) for p in ax.patches if hasattr(p, "get_height")]
        if heights:
            out.setdefault(f"{prefix}bars", "")
            out[f"{prefix}bars"] += ",".join(f"{h:.6g}" for h in heights[:200]) + ";"
    all_text += [t.get_text() for t in fig.texts]
    if getattr(fig, "_suptitle", None) is not None:
        all_text.append(fig._suptitle.get_text())
    out[f"{prefix}text"] = "\n".join(t for t in all_text if t)[:20000]
