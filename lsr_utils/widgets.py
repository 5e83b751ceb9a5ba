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
  Problems (a run without weights, a run of another image size) are shown as
  a message in the widget area.

``benchmarks/explorer_latency.py`` measures slider-to-image latency.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import LsrError
from .losses import kl_per_dimension
from .nn import reparameterize
from .pixels import model_to_unit, uint8_to_model, uint8_to_unit, unit_to_uint8


@dataclass
class RunChoice:
    label: str
    path: Path


def run_label(path: Path) -> str:
    """"dataset: beta=..., lambda=... (epochs) [hash]" for a GAN run folder; its name if unreadable."""
    from .runs import RunDir

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
    from .runs import find_runs

    return [RunChoice(run_label(p), p) for p in find_runs(out, kind="gan")]


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
        from .train import GANRun

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
        self.z = self.mu.clone()

    # ------------------------------------------------------------------ rendering (unit range, CPU)
    @torch.no_grad()
    def _both(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = z.reshape(-1, self.latent_dim).to(self.device)
        return model_to_unit(self.run.vae.decode(z)).cpu(), model_to_unit(self.run.generate(z)).cpu()

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
        """Set z[dim] = value; return (D(z), G(z))."""
        self.z[dim] = float(value)
        return self._both(self.z)

    def current(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._both(self.z)

    def reset_latent(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.z = self.mu.clone()
        return self.current()

    def random_latent(self) -> tuple[torch.Tensor, torch.Tensor]:
        """z ~ N(0, I), a sample from the prior."""
        self.z = torch.randn(self.latent_dim, generator=self.gen).to(self.device)
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
    """ipywidgets front end over :class:`ExplorerModel`. ``display(explorer.widget)`` shows it.

    ``runs``: a folder to search for finished LSR-GAN runs, or a list of run
    folders. ``data``: an :class:`~lsr_utils.data.ImageData` (loaded from each
    run's dataset when omitted).
    """

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
        self.message = W.HTML()
        layout = W.Layout(width="auto")
        self.run_select = W.Dropdown(options=[(c.label, i) for i, c in enumerate(self.choices)],
                                     description="run", layout=W.Layout(width="520px"))
        self.index = W.BoundedIntText(value=0, min=0, max=0, description="image #", layout=W.Layout(width="180px"))
        self.class_select = W.Dropdown(options=[("any class", -1)], value=-1, description="class",
                                       layout=W.Layout(width="220px"))
        self.random_image = W.Button(description="random image", layout=layout)
        self.random_z = W.Button(description="random z ~ N(0, I)", layout=layout)
        self.reset = W.Button(description="back to mu(x)", layout=layout)
        img = lambda: W.Image(format="png")  # noqa: E731
        self.img_input, self.img_vae, self.img_gan = img(), img(), img()
        self.img_cur_vae, self.img_cur_gan = img(), img()
        self.img_samples = [img() for _ in range(n_samples)]  # shown at half size, wrapping
        self.img_interp_vae, self.img_interp_gan = img(), img()
        self.sliders: list = []
        self.slider_box = W.VBox()
        self.end_a = W.BoundedIntText(value=0, min=0, max=0, description="from #", layout=W.Layout(width="170px"))
        self.end_b = W.BoundedIntText(value=1, min=0, max=1, description="to #", layout=W.Layout(width="170px"))
        self.t = W.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description="t",
                               continuous_update=True, layout=W.Layout(width="320px"))
        self.img_end_a, self.img_end_b = img(), img()

        def cap(widget, text):
            return W.VBox([W.HTML(f"<div style='font-size:11px;text-align:center'>{text}</div>"), widget])

        top = W.HBox([cap(self.img_input, "input x"), cap(self.img_vae, "VAE D(mu(x))"),
                      cap(self.img_gan, "LSR-GAN G(mu(x))"),
                      cap(W.Box(self.img_samples, layout=W.Layout(display="flex", flex_flow="row wrap",
                                                                   max_width=f"{3 * 34 * scale}px")),
                          "LSR-GAN G(z), z ~ q(z|x)")])
        edit = W.HBox([self.slider_box, W.VBox([W.HBox([cap(self.img_cur_vae, "VAE D(z)"),
                                                        cap(self.img_cur_gan, "LSR-GAN G(z)")]),
                                                self.random_z, self.reset])])
        interp = W.VBox([W.HBox([self.end_a, self.end_b, self.t]),
                         W.HBox([cap(self.img_end_a, "x_a"), cap(self.img_interp_vae, "VAE D(z_t)"),
                                 cap(self.img_interp_gan, "LSR-GAN G(z_t)"), cap(self.img_end_b, "x_b")])])
        self.widget = W.VBox([
            self.run_select, W.HBox([self.index, self.class_select, self.random_image]), self.message, top,
            W.HTML("<b>Latent dimensions with the largest KL</b> (sliders start at mu(x))"), edit,
            W.HTML("<b>Interpolation</b> z_t = (1 - t) mu(x_a) + t mu(x_b)"), interp])

        self.run_select.observe(lambda ch: self._guard(self._load_run, ch["new"]), names="value")
        self.index.observe(lambda ch: self._guard(self._select, ch["new"]), names="value")
        self.class_select.observe(lambda ch: self._guard(self._pick_class, ch["new"]), names="value")
        self.random_image.on_click(lambda _: self._guard(self._random_image))
        self.random_z.on_click(lambda _: self._guard(self._random_z))
        self.reset.on_click(lambda _: self._guard(self._reset))
        self.t.observe(lambda ch: self._guard(self._interp, ch["new"]), names="value")
        self.end_a.observe(lambda ch: self._guard(self._endpoints), names="value")
        self.end_b.observe(lambda ch: self._guard(self._endpoints), names="value")
        if not self.choices:
            self._error("no finished LSR-GAN runs found: train one (e.g. `lsr train-gan --profile quick`) "
                        "and create the explorer again")
        else:
            self._guard(self._load_run, 0)

    # ------------------------------------------------------------------ helpers
    def _guard(self, fn, *args):
        if self._busy:
            return
        try:
            self._busy = True
            fn(*args)
        except LsrError as e:
            self._error(str(e))
        finally:
            self._busy = False

    def _error(self, text: str) -> None:
        import html

        self.message.value = f"<div style='color:#b00020'><b>Cannot show this:</b> {html.escape(text)}</div>"

    def _show(self, widget, image) -> None:
        widget.value = png_bytes(image, self.scale)

    def _data_for(self, dataset: str, seed: int):
        if dataset not in self._data:
            from .data import load_data

            self._data[dataset] = load_data(dataset, root=self.data_root, n_test=self.n_test, seed=seed,
                                            n_train=2 if dataset == "shapes" else None)
        return self._data[dataset]

    # ------------------------------------------------------------------ callbacks
    def _load_run(self, i: int) -> None:
        from .train import load_run

        choice = self.choices[i]
        try:
            run = load_run(choice.path, self.device)
        except LsrError as e:
            raise LsrError(f"{choice.label}: {e}") from None
        data = self._data_for(run.config.vae.dataset, run.config.vae.data_seed)
        if self.model is None:
            self.model = ExplorerModel(run, data.test_x, data.test_y, data.classes, self.n_sliders, self.n_samples)
        else:
            self.model.set_run(run, data.test_x, data.test_y, data.classes)
        self.message.value = ""
        m = self.model
        n = len(m.test_x)
        self.index.max = self.end_a.max = self.end_b.max = n - 1
        self.class_select.options = [("any class", -1)] + [(c, k) for k, c in enumerate(m.classes)]
        self.sliders = []
        for rank, dim in enumerate(m.slider_dims()):
            s = self.W.FloatSlider(value=float(m.z[dim]), min=-4.0, max=4.0, step=0.05, continuous_update=True,
                                   description=f"z[{dim}]", readout_format=".2f",
                                   layout=self.W.Layout(width="340px"))
            s.observe(lambda ch, d=dim: self._guard(self._slide, d, ch["new"]), names="value")
            s.tooltip = f"KL {float(m.kl[dim]):.3g} nats (rank {rank + 1})"
            self.sliders.append(s)
        self.slider_box.children = tuple(self.sliders)
        self._refresh_all()

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
            s.value = float(max(min(self.model.z[dim], 4.0), -4.0))

    def _show_current(self) -> None:
        vae, gan = self.model.current()
        self._show(self.img_cur_vae, vae)
        self._show(self.img_cur_gan, gan)

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
        vae, gan = self.model.set_latent(dim, value)
        self._show(self.img_cur_vae, vae)
        self._show(self.img_cur_gan, gan)

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
