"""Figures: image grids with row labels and curves, saved as PNG and PDF."""
from __future__ import annotations

from pathlib import Path

import torch

from ..base.files import atomic_write
from ..base.pixels import check_unit_images


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline", "nbagg", "widget",
                                                "ipympl", "module://ipympl.backend_nbagg"):
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def image_grid(images: torch.Tensor, ncol: int, pad: int = 1, pad_value: float = 1.0) -> torch.Tensor:
    """Tile unit-range images (N, C, H, W) into one (H', W', C) array with ``ncol`` columns."""
    x = check_unit_images(images).cpu()
    n, c, h, w = x.shape
    nrow = -(-n // ncol)
    canvas = torch.full((c, nrow * (h + pad) + pad, ncol * (w + pad) + pad), pad_value)
    for i in range(n):
        r, q = divmod(i, ncol)
        canvas[:, pad + r * (h + pad):pad + r * (h + pad) + h, pad + q * (w + pad):pad + q * (w + pad) + w] = x[i]
    out = canvas.permute(1, 2, 0)
    return out.expand(*out.shape[:2], 3) if c == 1 else out


def image_rows(rows: list[tuple[str, torch.Tensor]], path: str | Path | None = None, *, title: str | None = None,
               scale: float = 0.55, formats=("png", "pdf")):
    """A figure with one labelled row per (label, unit-range images) pair; saved when ``path`` is given.

    ``path`` without suffix; one file per format is written. Returns the figure.
    """
    plt = _plt()
    ncol = max(len(r[1]) for r in rows)
    fig, axes = plt.subplots(len(rows), 1, figsize=(ncol * scale + 1.8, len(rows) * scale * 1.12 + (0.4 if title else 0)),
                             squeeze=False)
    for ax, (label, imgs) in zip(axes[:, 0], rows):
        ax.imshow(image_grid(imgs, ncol).numpy(), interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        for s in ax.spines.values():
            s.set_visible(False)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path, formats)
    return fig


def save_figure(fig, path: str | Path, formats=("png", "pdf")) -> list[Path]:
    """Save ``fig`` as ``path.<fmt>`` for each format (atomically); returns the files."""
    path = Path(path)
    written = []
    for fmt in formats:
        meta = {"CreationDate": None} if fmt == "pdf" else {"Software": None} if fmt == "png" else None
        written.append(atomic_write(path.with_suffix(f".{fmt}"), lambda tmp, fmt=fmt, meta=meta: fig.savefig(
            tmp, format=fmt, dpi=150, bbox_inches="tight", metadata=meta)))
    return written


def _finish(fig, title: str, path):
    """Title, tight layout, and save (PNG + PDF) when ``path`` is given."""
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def close(fig) -> None:
    _plt().close(fig)


UNITS = {"loss": "negative ELBO per batch", "recon": "reconstruction term", "kl_per_image": "KL, nats per image",
         "mse_per_pixel": "squared error per pixel, [0,1]", "g_loss": "generator loss", "d_loss": "discriminator loss",
         "g_adversarial": "adversarial term (BCE)", "lsr": "-log q(z|G(z)), mean per dim", "d_real": "D(x)",
         "d_fake": "D(G(z))", "train_accuracy": "fraction correct"}


def loss_curves(history: dict, keys: tuple[str, ...], path: str | Path | None = None, *, title: str = ""):
    """Per-step curves (``history["steps"]``) of ``keys``, one panel each, y-axis labelled with the unit.

    With fewer logged steps than two, the per-epoch values are drawn; a series
    of a single point is drawn as a marker, so no panel is ever empty.
    """
    plt = _plt()
    steps = history.get("steps", {})
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.6), squeeze=False)
    for ax, k in zip(axes[0], keys):
        x, y, unit = steps.get("step", []), steps.get(k, []), "step"
        if len(y) < 2:  # too few logged windows: the epochs
            x, y, unit = history.get("epoch", {}).get("epoch", []), history.get("epoch", {}).get(k, []), "epoch"
        ax.plot(x, y, lw=1.2, marker="o" if len(y) <= 20 else None, ms=4)
        if not y:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, fontsize=8)
        ax.set_title(k, fontsize=9)
        ax.set_xlabel(unit, fontsize=8)
        ax.set_ylabel(UNITS.get(k, k), fontsize=8)
        ax.tick_params(labelsize=7)
    return _finish(fig, title, path)


def sweep_panels(records: list[dict], x: str, panels: list[tuple[str, list[tuple[str, str, str]]]],
                 path: str | Path | None = None, *, title: str = ""):
    """Metric-versus-parameter panels with +-1 standard-error bars (the paper's Figures 5 and 6).

    ``records``: evaluation records (``lsr_utils.measurement.evaluate.evaluate_run``); ``x``:
    "beta" or "lam" (plotted on a log axis); ``panels``: (panel title, [(value
    key, legend label, colour), ...]). Collapsed GANs are left out of LSR-GAN
    series and marked on the axis.
    """
    plt = _plt()
    recs = sorted(records, key=lambda r: r[x])
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.0), squeeze=False)
    for ax, (ptitle, series) in zip(axes[0], panels):
        for key, label, colour in series:
            pts = [(r[x], r["values"][key]) for r in recs if key in r.get("values", {})
                   and not ("lsr_gan" in key and r.get("collapse", {}).get("collapsed"))]
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1]["mean"] for p in pts],
                            yerr=[p[1]["sem"] or 0 for p in pts], fmt="o-", color=colour, label=label, ms=4,
                            capsize=3, lw=1)
            collapsed = [r[x] for r in recs if "lsr_gan" in key and r.get("collapse", {}).get("collapsed")]
            for c in collapsed:
                ax.axvline(c, color=colour, ls=":", lw=1)
                ax.text(c, ax.get_ylim()[1], " collapse", color=colour, fontsize=7, va="top", rotation=90)
        ax.set_xscale("log")
        ax.set_xlabel({"lam": "lambda", "beta": "beta"}.get(x, x))
        ax.set_title(ptitle, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    return _finish(fig, title, path)


CONVERGENCE_PANELS = (("MSE per image, [0,1] scale", "mse"), ("absolute classification, %", "absolute"),
                      ("sharpness", "sharpness"), ("variance among samples of q(z|x)", "variance"))


def convergence_panels(conv: dict, path: str | Path | None = None, *, paper_values: dict | None = None,
                       title: str = ""):
    """The LSR-GAN's metrics after each kept epoch, the VAE's as a flat line, the paper's final values as dashes.

    ``conv``: :func:`lsr_utils.measurement.evaluate.convergence`'s result; ``paper_values``:
    ``{"mse_lsr_gan": 163.06, ...}`` (the paper's numbers after its full schedule).
    """
    plt = _plt()
    recs = conv["records"]
    epochs = [r["gan_epochs_done"] for r in recs]
    fig, axes = plt.subplots(1, len(CONVERGENCE_PANELS), figsize=(3.6 * len(CONVERGENCE_PANELS), 3.0),
                             squeeze=False)
    for ax, (ptitle, key) in zip(axes[0], CONVERGENCE_PANELS):
        gan = [r["values"][f"{key}_lsr_gan"] for r in recs]
        ax.errorbar(epochs, [v["mean"] for v in gan], yerr=[v.get("sem") or 0 for v in gan], fmt="o-",
                    color="tab:red", label="LSR-GAN", ms=4, capsize=3, lw=1)
        vae = recs[-1]["values"][f"{key}_vae"]["mean"]
        ax.axhline(vae, color="tab:blue", lw=1, label="VAE")
        for name, colour in (("lsr_gan", "tab:red"), ("vae", "tab:blue")):
            pv = (paper_values or {}).get(f"{key}_{name}")
            if pv is not None:
                ax.axhline(pv, color=colour, ls="--", lw=1,
                           label="paper, " + ("LSR-GAN (500 epochs)" if name == "lsr_gan" else "VAE (100 epochs)"))
        ax.set_xscale("log")
        ax.set_xlabel("LSR-GAN epochs")
        ax.set_title(ptitle, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    return _finish(fig, title, path)
