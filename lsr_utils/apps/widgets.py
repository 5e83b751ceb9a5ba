"""The latent explorer: see what a VAE latent space keeps and what LSR-GAN imagines.

Two layers:

* :class:`ExplorerModel` holds the state and does the computing (no widgets):
  the chosen run, the chosen test image x, its posterior q(z|x), the current
  latent z (starting at mu(x)), the latent dimensions ranked by their average
  KL (the ones that carry information), interpolation endpoints. Its methods
  return unit-range images, so it is tested headless.
* :class:`LatentExplorer` puts ipywidgets on top (imported lazily): a run
  selector, image pickers (index, class, random), sliders over the top-KL
  dimensions, an interpolation slider, a "random z" button, and image panels
  that show the VAE decoder D(.) and the LSR-GAN generator G(.) side by side.

What a user sees is what was computed:

* the sliders move in steps of :data:`SLIDER_STEP` and z's slider dimensions
  are kept on that grid (mu(x) and random draws are rounded to it, by at most
  half a step), so a slider shows exactly the z that was rendered, and the
  browser never sends back a rounded value that would redraw again; a line
  under the sliders prints the rendered values;
* every user action redraws once;
* switching runs hides the panels and says "loading" until the new run's
  images are in place, so no image is ever shown under another run's label;
* a run of the smoke profile (seconds of training) is labelled as untrained;
* the explorer's last state is kept as a **static snapshot** (a PNG of its
  panels, a separate output updated after every action): a notebook opened
  without a kernel, untrusted, without saved widget state, or exported to
  HTML and read offline still shows it. Moving anything needs a running
  kernel.

``benchmarks/explorer_latency.py`` measures slider-to-image latency.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import torch

from ..base.errors import LsrError
from ..base.pixels import model_to_unit, uint8_to_model, uint8_to_unit, unit_to_uint8
from ..method.losses import kl_per_dimension
from ..method.nn import reparameterize


@dataclass
class RunChoice:
    label: str
    path: Path


def run_label(path: Path) -> str:
    """"dataset: beta=..., lambda=... (epochs) [hash]" for a GAN run folder; its name if unreadable."""
    from ..storage.runs import RunDir

    path = Path(path)
    try:
        kind, cfg = RunDir(path).read_config()
    except LsrError:
        return path.name
    if kind != "gan":
        return f"{path.name} ({kind} run)"
    return (f"{cfg.vae.dataset}: beta={cfg.vae.beta:g}, lambda={cfg.lam:g} "
            f"({cfg.vae.epochs}+{cfg.epochs} epochs) [{path.name[-8:]}]")


def list_runs(out: str | Path = "runs") -> list[RunChoice]:
    """Finished LSR-GAN runs under ``out``, labelled by dataset, beta, lambda and epochs."""
    from ..storage.runs import find_runs

    return [RunChoice(run_label(p), p) for p in find_runs(out, kind="gan")]


SLIDER_STEP = 0.01   # latent sliders move on this grid; z's slider dimensions are kept on it
SLIDER_RANGE = 4.0   # sliders span [-4, 4] (the prior's mass is within +-3)


class ExplorerModel:
    """State and computation of the explorer, independent of any widget library."""

    def __init__(self, run, test_x: torch.Tensor, test_y: torch.Tensor | None = None, classes=(),
                 n_sliders: int = 8, n_samples: int = 6, seed: int = 0, kl_images: int = 512):
        self.set_run(run, test_x, test_y, classes, kl_images=kl_images)
        self.n_sliders, self.n_samples = n_sliders, n_samples
        self.gen = torch.Generator().manual_seed(seed)
        self.select(0)
        self.set_endpoints(0, min(1, len(test_x) - 1))

    # ------------------------------------------------------------------ runs and images
    def set_run(self, run, test_x, test_y=None, classes=(), kl_images: int = 512) -> None:
        from ..models.finished import GANRun

        if not isinstance(run, GANRun):
            raise LsrError("the explorer needs an LSR-GAN run (a gan-* folder), not a VAE run")
        v = run.config.vae
        if test_x.shape[1:] != (v.channels, v.image_size, v.image_size):
            raise LsrError(f"this run is for {v.channels}x{v.image_size}x{v.image_size} images but the test images "
                           f"are {'x'.join(map(str, test_x.shape[1:]))}; pick a run of the same dataset")
        self.run, self.test_x, self.test_y, self.classes = run, test_x, test_y, tuple(classes)
        self.device = run.vae.device
        mu, logvar = run.vae.encode(uint8_to_model(test_x[:kl_images]).to(self.device))
        self.kl = kl_per_dimension(mu, logvar).cpu()
        self.ranked = torch.argsort(self.kl, descending=True)
        if hasattr(self, "index"):
            self.select(self.index)
            self.set_endpoints(*self.endpoints)

    @property
    def latent_dim(self) -> int:
        return self.run.config.vae.latent_dim

    def indices_of_class(self, label: int) -> list[int]:
        if self.test_y is None:
            return list(range(len(self.test_x)))
        return torch.nonzero(self.test_y == label).flatten().tolist()

    def random_index(self, label: int | None = None) -> int:
        pool = self.indices_of_class(label) if label is not None else list(range(len(self.test_x)))
        if not pool:
            raise LsrError(f"no test image of class {label}")
        return pool[int(torch.randint(len(pool), (1,), generator=self.gen))]

    def select(self, index: int) -> None:
        if not 0 <= index < len(self.test_x):
            raise LsrError(f"image index must be in 0..{len(self.test_x) - 1}, got {index}")
        self.index = int(index)
        x = uint8_to_model(self.test_x[index:index + 1]).to(self.device)
        mu, logvar = self.run.vae.encode(x)
        self.mu, self.logvar = mu[0], logvar[0]
        self.z = self.on_grid(self.mu)
        self.from_prior = False  # z is a code of a real image (G renders it as such: GANRun.render)

    def on_grid(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` with its slider dimensions rounded to the sliders' grid (and range): what the sliders can show."""
        z = z.clone()
        dims = self.slider_dims()
        z[dims] = (z[dims] / SLIDER_STEP).round().mul(SLIDER_STEP).clamp(-SLIDER_RANGE, SLIDER_RANGE)
        return z

    def untrained(self) -> str | None:
        """A warning when the run's networks have learnt next to nothing (flat grey images), else None."""
        from ..method.config import infer_profile, plumbing_only

        total_kl = float(self.kl.sum())
        if plumbing_only(infer_profile(self.run.config)):
            return (f"These models are untrained: a smoke-profile run (seconds of training, for tests), so their "
                    f"images are flat and the latent carries {total_kl:.2f} nats. Train with the quick profile "
                    f"(lsr train-gan --profile quick) to see the effect.")
        if total_kl < 1.0:
            return f"The latent of this run carries almost no information ({total_kl:.2f} nats): it is untrained."
        return None

    # ------------------------------------------------------------------ rendering (unit range, CPU)
    @torch.no_grad()
    def _both(self, z: torch.Tensor, prior: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(D(z), G(z)); G renders a prior sample with GANRun.generate, a code of a real image with its render."""
        z = z.reshape(-1, self.latent_dim).to(self.device)
        g = self.run.generate if prior else self.run.render
        return model_to_unit(self.run.vae.decode(z)).cpu(), model_to_unit(g(z)).cpu()

    def input_image(self) -> torch.Tensor:
        return uint8_to_unit(self.test_x[self.index:self.index + 1])

    def reconstructions(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(VAE D(mu(x)), LSR-GAN G(mu(x)))."""
        return self._both(self.mu)

    def posterior_samples(self) -> torch.Tensor:
        """G(z) for ``n_samples`` draws z ~ q(z|x)."""
        z = reparameterize(self.mu[None].cpu(), self.logvar[None].cpu(), self.gen, samples=self.n_samples)[:, 0]
        return self._both(z)[1]

    def slider_dims(self) -> list[int]:
        return self.ranked[:self.n_sliders].tolist()

    def set_latent(self, dim: int, value: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Set z[dim] = value (on the sliders' grid); return (D(z), G(z))."""
        self.z[dim] = round(float(value) / SLIDER_STEP) * SLIDER_STEP
        return self.current()

    def current(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._both(self.z, prior=self.from_prior)

    def reset_latent(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.z = self.on_grid(self.mu)
        self.from_prior = False
        return self.current()

    def random_latent(self) -> tuple[torch.Tensor, torch.Tensor]:
        """z ~ N(0, I), a sample from the prior (its slider dimensions on the sliders' grid)."""
        self.z = self.on_grid(torch.randn(self.latent_dim, generator=self.gen).to(self.device))
        self.from_prior = True
        return self.current()

    def set_endpoints(self, a: int, b: int) -> None:
        for i in (a, b):
            if not 0 <= i < len(self.test_x):
                raise LsrError(f"image index must be in 0..{len(self.test_x) - 1}, got {i}")
        self.endpoints = (int(a), int(b))
        mu, _ = self.run.vae.encode(uint8_to_model(self.test_x[[a, b]]).to(self.device))
        self.mu_a, self.mu_b = mu[0], mu[1]

    def interpolate(self, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(D, G) of (1 - t) mu(x_a) + t mu(x_b)."""
        return self._both((1.0 - t) * self.mu_a + t * self.mu_b)


# --------------------------------------------------------------------------- widgets
def png_bytes(image: torch.Tensor, scale: int = 4) -> bytes:
    """One unit-range image (1, C, H, W) or (C, H, W) as PNG bytes, enlarged ``scale`` times (nearest)."""
    from PIL import Image

    x = image[0] if image.dim() == 4 else image
    arr = unit_to_uint8(x).permute(1, 2, 0).numpy()
    im = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    if scale != 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class LatentExplorer:
    """ipywidgets front end over :class:`ExplorerModel`. ``display(explorer)`` shows it and its snapshot.

    ``runs``: a folder to search for finished LSR-GAN runs, or a list of run
    folders. ``data``: an :class:`~lsr_utils.data.ImageData` (loaded from each
    run's dataset when omitted). Every panel carries a CSS class
    (``lsr-input``, ``lsr-vae``, ``lsr-gan``, ``lsr-samples``, ``lsr-cur-vae``,
    ``lsr-cur-gan``, ``lsr-interp-vae``, ``lsr-interp-gan``), so that a page can
    be checked from the browser.
    """

    PANELS = {"img_input": "lsr-input", "img_vae": "lsr-vae", "img_gan": "lsr-gan", "img_cur_vae": "lsr-cur-vae",
              "img_cur_gan": "lsr-cur-gan", "img_interp_vae": "lsr-interp-vae", "img_interp_gan": "lsr-interp-gan"}

    def __init__(self, runs: str | Path | list = "runs", data=None, *, device="cpu", data_root=None,
                 n_sliders: int = 8, n_samples: int = 6, scale: int = 4, n_test: int = 1000):
        import ipywidgets as W

        self.W, self.scale, self.device, self.data_root, self.n_test = W, scale, device, data_root, n_test
        self.n_sliders, self.n_samples = n_sliders, n_samples
        self._data = {} if data is None else {data.name: data}
        if isinstance(runs, (str, Path)):
            self.choices = list_runs(runs)
        else:
            self.choices = [RunChoice(run_label(p), Path(p)) for p in runs]
        self.model: ExplorerModel | None = None
        self._busy = False
        self._snapshot_handle = None
        self.message = W.HTML()
        self.message.add_class("lsr-message")
        self.warning = W.HTML()
        self.warning.add_class("lsr-warning")
        layout = W.Layout(width="auto")
        self.run_select = W.Dropdown(options=[(c.label, i) for i, c in enumerate(self.choices)],
                                     description="run", layout=W.Layout(width="520px"))
        self.run_select.add_class("lsr-run")
        self.index = W.BoundedIntText(value=0, min=0, max=0, description="image #", layout=W.Layout(width="180px"))
        self.index.add_class("lsr-index")
        self.class_select = W.Dropdown(options=[("any class", -1)], value=-1, description="class",
                                       layout=W.Layout(width="220px"))
        self.random_image = W.Button(description="random image", layout=layout)
        self.random_z = W.Button(description="random z ~ N(0, I)", layout=layout)
        self.random_z.add_class("lsr-random-z")
        self.reset = W.Button(description="back to mu(x)", layout=layout)
        self.reset.add_class("lsr-reset")
        img = lambda: W.Image(format="png")
        self.img_input, self.img_vae, self.img_gan = img(), img(), img()
        self.img_cur_vae, self.img_cur_gan = img(), img()
        self.img_samples = [img() for _ in range(n_samples)]  # shown at half size, wrapping
        for w in self.img_samples:
            w.add_class("lsr-samples")
        self.img_interp_vae, self.img_interp_gan = img(), img()
        for name, css in self.PANELS.items():
            getattr(self, name).add_class(css)
        self.sliders: list = []
        self.slider_box = W.VBox()
        self.rendered = W.HTML()  # the values of z's slider dimensions that the current images were rendered from
        self.rendered.add_class("lsr-rendered-z")
        self.end_a = W.BoundedIntText(value=0, min=0, max=0, description="from #", layout=W.Layout(width="170px"))
        self.end_b = W.BoundedIntText(value=1, min=0, max=1, description="to #", layout=W.Layout(width="170px"))
        self.t = W.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description="t",
                               continuous_update=False, layout=W.Layout(width="320px"))
        self.img_end_a, self.img_end_b = img(), img()

        def cap(widget, text):
            return W.VBox([W.HTML(f"<div style='font-size:11px;text-align:center'>{text}</div>"), widget])

        top = W.HBox([cap(self.img_input, "input x"), cap(self.img_vae, "VAE D(mu(x))"),
                      cap(self.img_gan, "LSR-GAN G(mu(x))"),
                      cap(W.Box(self.img_samples, layout=W.Layout(display="flex", flex_flow="row wrap",
                                                                   max_width=f"{3 * 34 * scale}px")),
                          "LSR-GAN G(z), z ~ q(z|x)")])
        edit = W.HBox([W.VBox([self.slider_box, self.rendered]),
                       W.VBox([W.HBox([cap(self.img_cur_vae, "VAE D(z)"), cap(self.img_cur_gan, "LSR-GAN G(z)")]),
                               self.random_z, self.reset])])
        interp = W.VBox([W.HBox([self.end_a, self.end_b, self.t]),
                         W.HBox([cap(self.img_end_a, "x_a"), cap(self.img_interp_vae, "VAE D(z_t)"),
                                 cap(self.img_interp_gan, "LSR-GAN G(z_t)"), cap(self.img_end_b, "x_b")])])
        self.panels = W.VBox([top, W.HTML("<b>Latent dimensions with the largest KL</b> (sliders start at mu(x))"),
                              edit, W.HTML("<b>Interpolation</b> z_t = (1 - t) mu(x_a) + t mu(x_b)"), interp])
        self.widget = W.VBox([self.run_select, W.HBox([self.index, self.class_select, self.random_image]),
                              self.message, self.warning, self.panels])
        self.widget.add_class("lsr-explorer")

        self.run_select.observe(lambda ch: self._act(self._load_run, ch["new"]), names="value")
        self.index.observe(lambda ch: self._act(self._select, ch["new"]), names="value")
        self.class_select.observe(lambda ch: self._act(self._pick_class, ch["new"]), names="value")
        self.random_image.on_click(lambda _: self._act(self._random_image))
        self.random_z.on_click(lambda _: self._act(self._random_z))
        self.reset.on_click(lambda _: self._act(self._reset))
        self.t.observe(lambda ch: self._act(self._interp, ch["new"]), names="value")
        self.end_a.observe(lambda ch: self._act(self._endpoints), names="value")
        self.end_b.observe(lambda ch: self._act(self._endpoints), names="value")
        if not self.choices:
            self._error("no finished LSR-GAN runs found: train one (e.g. `lsr train-gan --profile quick`) "
                        "and create the explorer again")
        else:
            self._act(self._load_run, 0)

    # ------------------------------------------------------------------ display
    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
        self._snapshot_handle = display(self.snapshot_output(), display_id=True)

    def snapshot_output(self):
        """The explorer's current panels as one static image (the fallback a notebook keeps without a kernel)."""
        return _SnapshotImage(self.snapshot_png(), self.snapshot_caption())

    def snapshot_caption(self) -> str:
        if self.model is None:
            return "latent explorer: nothing to show"
        return (f"Latent explorer, last state (static snapshot; moving it needs a running kernel): "
                f"{self.choices[self.run_select.value].label}, image #{self.model.index}")

    def snapshot_png(self) -> bytes:
        """A PNG of the panels: input, D(mu(x)), G(mu(x)), D(z), G(z), the interpolation, with labels."""
        from PIL import Image, ImageDraw

        if self.model is None:
            return b""
        tiles = [("input x", self.img_input), ("VAE D(mu(x))", self.img_vae), ("LSR-GAN G(mu(x))", self.img_gan),
                 ("VAE D(z)", self.img_cur_vae), ("LSR-GAN G(z)", self.img_cur_gan), ("x_a", self.img_end_a),
                 ("VAE D(z_t)", self.img_interp_vae), ("LSR-GAN G(z_t)", self.img_interp_gan), ("x_b", self.img_end_b)]
        ims = [(label, Image.open(io.BytesIO(w.value)).convert("RGB")) for label, w in tiles if w.value]
        if not ims:
            return b""
        side = ims[0][1].width
        canvas = Image.new("RGB", (len(ims) * (side + 8) + 8, side + 40), "white")
        draw = ImageDraw.Draw(canvas)
        for k, (label, im) in enumerate(ims):
            x = 8 + k * (side + 8)
            canvas.paste(im.resize((side, side)), (x, 22))
            draw.text((x, 4), label[:22], fill="black")
        z = ", ".join(f"z[{d}]={float(self.model.z[d]):.2f}" for d in self.model.slider_dims()[:6])
        draw.text((8, side + 26), z[:200], fill="black")
        buf = io.BytesIO()
        canvas.save(buf, format="PNG", compress_level=6)
        return buf.getvalue()

    def _update_snapshot(self) -> None:
        if self._snapshot_handle is not None:
            self._snapshot_handle.update(self.snapshot_output())

    # ------------------------------------------------------------------ helpers
    def _act(self, fn, *args):
        """One user action: ignore the events our own updates cause, redraw once, refresh the snapshot.

        Before it ends, the sliders are set to the z that was rendered: a value that
        reached the kernel while it was busy (the browser's, from before the action)
        never stays on a slider that does not match the images.
        """
        if self._busy:
            return
        try:
            self._busy = True
            fn(*args)
            if self.model is not None:
                self._sync_sliders()
            self._update_snapshot()
        except LsrError as e:
            self._error(str(e))
        finally:
            self._busy = False

    _guard = _act  # (the benchmark and older code call it so)

    def _error(self, text: str) -> None:
        import html

        self.message.value = f"<div style='color:#b00020'><b>Cannot show this:</b> {html.escape(text)}</div>"

    def _show(self, widget, image) -> None:
        widget.value = png_bytes(image, self.scale)

    def _data_for(self, dataset: str, seed: int):
        if dataset not in self._data:
            from ..data import load_data

            self._data[dataset] = load_data(dataset, root=self.data_root, n_test=self.n_test, seed=seed,
                                            n_train=2 if dataset == "shapes" else None)
        return self._data[dataset]

    # ------------------------------------------------------------------ callbacks
    def _load_run(self, i: int) -> None:
        import html

        from ..models.finished import load_run

        choice = self.choices[i]
        # busy: the panels are hidden until the new run's images are in place (never one run's images under
        # another run's label)
        self.panels.layout.visibility = "hidden"
        self.message.value = f"<div class='lsr-loading'><b>Loading</b> {html.escape(choice.label)} ...</div>"
        try:
            run = load_run(choice.path, self.device)
        except LsrError as e:
            raise LsrError(f"{choice.label}: {e}") from None
        data = self._data_for(run.config.vae.dataset, run.config.vae.data_seed)
        if self.model is None:
            self.model = ExplorerModel(run, data.test_x, data.test_y, data.classes, self.n_sliders, self.n_samples)
        else:
            self.model.set_run(run, data.test_x, data.test_y, data.classes)
        m = self.model
        n = len(m.test_x)
        self.index.max = self.end_a.max = self.end_b.max = n - 1
        self.class_select.options = [("any class", -1)] + [(c, k) for k, c in enumerate(m.classes)]
        self.sliders = []
        for rank, dim in enumerate(m.slider_dims()):
            # continuous_update=False: the browser sends a value when the user lets go (one redraw per user action),
            # never when the kernel moves the slider (no echo to redraw again)
            s = self.W.FloatSlider(value=float(m.z[dim]), min=-SLIDER_RANGE, max=SLIDER_RANGE, step=SLIDER_STEP,
                                   continuous_update=False, description=f"z[{dim}]", readout_format=".2f",
                                   layout=self.W.Layout(width="340px"))
            s.observe(lambda ch, d=dim: self._act(self._slide, d, ch["new"]), names="value")
            s.tooltip = f"KL {float(m.kl[dim]):.3g} nats (rank {rank + 1})"
            s.add_class("lsr-slider")
            self.sliders.append(s)
        self.slider_box.children = tuple(self.sliders)
        self._refresh_all()
        warning = m.untrained()
        self.warning.value = "" if warning is None else \
            f"<div style='color:#8a5300'><b>Untrained models.</b> {html.escape(warning)}</div>"
        self.message.value = ""
        self.panels.layout.visibility = "visible"

    def _refresh_all(self) -> None:
        m = self.model
        self._show(self.img_input, m.input_image())
        vae, gan = m.reconstructions()
        self._show(self.img_vae, vae)
        self._show(self.img_gan, gan)
        for w, s in zip(self.img_samples, m.posterior_samples()):
            w.value = png_bytes(s, max(1, self.scale // 2))
        self._sync_sliders()
        self._show_current()
        self._endpoints()

    def _sync_sliders(self) -> None:
        for s, dim in zip(self.sliders, self.model.slider_dims()):
            value = float(self.model.z[dim])  # on the slider grid already: the browser keeps it as it is
            if s.value != value:
                s.value = value

    def _show_current(self) -> None:
        vae, gan = self.model.current()
        self._show(self.img_cur_vae, vae)
        self._show(self.img_cur_gan, gan)
        self.rendered.value = "<span style='font-size:11px'>rendered from " + ", ".join(
            f"<span class='lsr-z' data-dim='{d}'>z[{d}]={float(self.model.z[d]):.2f}</span>"
            for d in self.model.slider_dims()) + "</span>"

    def _select(self, index: int) -> None:
        self.model.select(index)
        self._refresh_all()

    def _pick_class(self, label: int) -> None:
        idx = self.model.random_index(None if label < 0 else label)
        self.index.value = idx
        self._select(idx)

    def _random_image(self) -> None:
        label = self.class_select.value
        idx = self.model.random_index(None if label is None or label < 0 else label)
        self.index.value = idx
        self._select(idx)

    def _slide(self, dim: int, value: float) -> None:
        if abs(float(self.model.z[dim]) - value) < SLIDER_STEP / 10:  # the same grid point: nothing to redraw
            return
        self.model.set_latent(dim, value)
        self._show_current()

    def _random_z(self) -> None:
        self.model.random_latent()
        self._sync_sliders()
        self._show_current()

    def _reset(self) -> None:
        self.model.reset_latent()
        self._sync_sliders()
        self._show_current()

    def _endpoints(self) -> None:
        m = self.model
        m.set_endpoints(self.end_a.value, self.end_b.value)
        self._show(self.img_end_a, uint8_to_unit(m.test_x[m.endpoints[0]:m.endpoints[0] + 1]))
        self._show(self.img_end_b, uint8_to_unit(m.test_x[m.endpoints[1]:m.endpoints[1] + 1]))
        self._interp(self.t.value)

    def _interp(self, t: float) -> None:
        vae, gan = self.model.interpolate(t)
        self._show(self.img_interp_vae, vae)
        self._show(self.img_interp_gan, gan)


class _SnapshotImage:
    """A PNG with a plain-text caption: the explorer's static snapshot as a notebook output."""

    def __init__(self, png: bytes, caption: str):
        self.png, self.caption = png, caption

    def _repr_mimebundle_(self, include=None, exclude=None):
        import base64

        if not self.png:
            return {"text/plain": self.caption}
        return {"image/png": base64.b64encode(self.png).decode(), "text/plain": self.caption}, \
            {"image/png": {"alt": self.caption}}
