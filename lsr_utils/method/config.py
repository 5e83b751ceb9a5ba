"""Typed configurations of the two training stages, the profiles, and their one validator.

* :class:`TrainConfig`: what every training stage shares (schedule, optimiser,
  seed, precision).
* :class:`VAEConfig` (stage 1) and :class:`GANConfig` (stage 2, holding the
  ``VAEConfig`` of the VAE it builds on) extend it.
* :data:`PROFILES`: the profiles as data (sizes of a run and of its
  evaluation), and :func:`make_config` to build a stage's configuration
  from a profile plus explicit overrides.

A run's folder name and identity come from its configuration (see
:mod:`lsr_utils.storage.runs`): every field changes what is trained, so every field is
part of that identity, including ``data_id``, the fingerprint of the images a
run was trained on (filled in by :func:`lsr_utils.data.bind_data` when the run
meets its data). Where the run happens (device, progress bars) is not.

Each field carries its check and its help text (``field(metadata=...)``);
``__post_init__`` applies the checks, and the command line builds its
options from the same metadata, so a field is described in one place.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

from ..base.errors import LsrError
from ..base.limits import LIMITS
from ..data.registry import dataset as dataset_entry
from ..data.registry import geometry
from . import paper

# ----------------------------------------------------------------------------- checks
MAX_SEED = 2 ** 63 - 1


def positive_int(name: str, v):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise LsrError(f"{name} must be >= 1 (a whole number), got {v!r}")
    return v


def nonneg_int(name: str, v):
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise LsrError(f"{name} must be >= 0 (a whole number), got {v!r}")
    return v


def decay_rate(name: str, v):
    f = nonneg_float(name, v)
    if f >= 1:
        raise LsrError(f"{name} must be in [0, 1) (0: off), got {v!r}")
    return f


def share(name: str, v):
    f = nonneg_float(name, v)
    if not 0 < f <= 1:
        raise LsrError(f"{name} must be in (0, 1] (a share), got {v!r}")
    return f


def bounded_int(limit_name: str, optional: bool = False):
    def check(name: str, v):
        if optional and v is None:
            return None
        positive_int(name, v)
        if v > LIMITS[limit_name]:
            raise LsrError(f"{name} = {v:,} is over the kit's limit of {LIMITS[limit_name]:,} (a guard against a "
                           f"damaged or hostile configuration; raise LIMITS[{limit_name!r}] in lsr_utils/base/limits.py if "
                           f"you really need more)")
        return v
    return check


def batch_size(name: str, v):
    bounded_int("batch_size")(name, v)
    if v < 2:
        raise LsrError(f"{name} must be at least 2 (BatchNorm needs two images), got {v}")
    return v


def seed(name: str, v):
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_SEED:
        raise LsrError(f"{name} must be an integer from 0 to {MAX_SEED}, got {v!r}")
    return v


def finite_float(name: str, v) -> float:
    if isinstance(v, bool):
        raise LsrError(f"{name} must be a number, got {v!r}")
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise LsrError(f"{name} must be a number, got {v!r}") from None
    if not math.isfinite(f):
        raise LsrError(f"{name} must be a finite number, got {v!r}")
    return f


def nonneg_float(name: str, v):
    f = finite_float(name, v)
    if f < 0:
        raise LsrError(f"{name} must be >= 0, got {v!r}")
    return f


def positive_float(name: str, v):
    f = nonneg_float(name, v)
    if f == 0:
        raise LsrError(f"{name} must be > 0, got {v!r}")
    return f


def adam_betas(name: str, v):
    try:
        b = tuple(float(x) for x in v)
    except (TypeError, ValueError):
        raise LsrError(f"{name} must be two numbers in [0, 1), got {v!r}") from None
    if len(b) != 2 or not all(0 <= x < 1 for x in b):
        raise LsrError(f"{name} must be two numbers in [0, 1), got {v!r}")
    return b


def one_of(*choices):
    def check(name: str, v):
        if v not in choices:
            raise LsrError(f"{name} must be one of {', '.join(map(repr, choices))}; got {v!r}")
        return v
    check.choices = choices
    return check


def dataset_name(name: str, v):
    return dataset_entry(v).name


def optional_float(name: str, v):
    return None if v is None else finite_float(name, v)


def optional_str(name: str, v):
    if v is not None and not isinstance(v, str):
        raise LsrError(f"{name} must be a string, got {v!r}")
    return v


def spec(default, check, help: str, **meta):
    """A configuration field: its default, its check and its help text (the CLI's too)."""
    kw = {"default_factory": default} if callable(default) else {"default": default}
    return field(**kw, metadata={"check": check, "help": help, **meta})


def validate(cfg) -> None:
    """Apply every field's check (normalising its value, e.g. ``"1"`` -> 1.0 where allowed)."""
    for f in fields(cfg):
        check = f.metadata.get("check")
        if check is not None:
            object.__setattr__(cfg, f.name, check(f.metadata.get("label", f.name), getattr(cfg, f.name)))


# ----------------------------------------------------------------------------- configurations
class _Config:
    """What every configuration does: check its fields, and go to and from a JSON-ready dict."""

    def __post_init__(self):
        validate(self)

    def to_dict(self) -> dict:
        """The fields as JSON-ready values. A field added after the first release (``since`` in its metadata) is left
        out while it holds its default, the paper's value, so that a run's identity (its folder's hash) stays what
        it was before the field existed."""
        d = asdict(self)
        for f in fields(self):
            if f.metadata.get("since") and getattr(self, f.name) == f.default:
                d.pop(f.name)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict):
        if not isinstance(d, dict):
            raise LsrError(f"{cls.__name__}: expected a mapping of fields, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise LsrError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
        kw = dict(d)
        if isinstance(kw.get("adam_betas"), list):
            kw["adam_betas"] = tuple(kw["adam_betas"])
        return cls(**kw)

    def replace(self, **kw):
        return replace(self, **kw)


@dataclass(frozen=True)
class TrainConfig(_Config):
    """What every training stage shares: the schedule, the optimiser (Adam, Appendix D), the seed, the arithmetic."""

    epochs: int = spec(1, bounded_int("epochs"), "epochs over the training images")
    batch_size: int = spec(32, batch_size, "images per step (the paper's: 32)")
    lr: float = spec(2e-4, nonneg_float, "Adam learning rate (the reference's: 2e-4)")
    adam_betas: tuple[float, float] = spec((0.5, 0.999), adam_betas, "Adam betas (the reference's: 0.5, 0.999)")
    seed: int = spec(13, seed, "random seed of weights, shuffling and noise (the reference's: 13)")
    precision: str = spec("fp32", one_of("fp32", "bf16"), "fp32, or bf16 autocast (changes the arithmetic)")
    lr_warmup: int = spec(0, nonneg_int, "steps of linear learning-rate warm-up from 0 (the paper's: 0)", since="0.3")
    lr_decay: str = spec("constant", one_of("constant", "cosine"),
                         "learning rate after the warm-up: constant (the paper's) or cosine decay to 0 at the last step",
                         since="0.3")


@dataclass(frozen=True)
class VAEConfig(TrainConfig):
    """Stage 1: the (beta-)VAE (sections 2.1, 2.3; eq. 2 and 5; Appendix A, D)."""

    epochs: int = spec(100, bounded_int("epochs"), "VAE epochs (the paper's: 100)")
    dataset: str = spec("shapes", dataset_name, "the dataset (see README: Datasets)")
    n_train: int | None = spec(None, bounded_int("n_train", optional=True),
                               "training images: a fixed, seeded, class-balanced selection of N (None: all)")
    data_seed: int = spec(0, seed, "seed of the training-image selection (and of the generated `shapes`)")
    data_id: str | None = spec(None, optional_str, "fingerprint of the training images (set when the run meets "
                                                   "its data)")
    image_size: int = spec(32, one_of(28, 32, 64), "image side in pixels")
    channels: int = spec(3, one_of(1, 3), "image channels")
    latent_dim: int = spec(128, bounded_int("latent_dim"), "latent dimensions (the paper's: 128)")
    beta: float = spec(1.0, nonneg_float, "beta of the beta-VAE, eq. 5 (1: the plain VAE)")
    recon_loss: str = spec("log_mse", one_of("log_mse", "sse"),
                           "VAE reconstruction term: log_mse (Appendix A, the default) or sse (sum of squares)")
    # A VAE trained elsewhere (lsr_utils.models.external): where its networks come from, their weights, and what they take
    source: str | None = spec(None, optional_str, "None: trained by the kit; 'pythae:<Model>' or 'module': a VAE "
                                                  "trained elsewhere, whose frozen encoder LSR-GAN renders", since="0.3")
    source_sha256: str | None = spec(None, optional_str, "SHA-256 of that VAE's weights", since="0.3")
    pixel_range: str = spec("model", one_of("model", "unit"), "the pixel range that VAE's networks take and give: "
                                                             "model ([-1, 1], the kit's) or unit ([0, 1])", since="0.3")
    fixed_logvar: float | None = spec(None, optional_float, "log-variance stated for an encoder that gives none "
                                                            "(an autoencoder); None: the encoder's own", since="0.3")


@dataclass(frozen=True)
class GANConfig(TrainConfig):
    """Stage 2: the LSR-GAN on a frozen VAE encoder (section 2.2; eq. 1, 3, 4)."""

    epochs: int = spec(500, bounded_int("epochs"), "LSR-GAN epochs (the paper's: 500)")
    vae: VAEConfig = spec(VAEConfig, None, "the VAE this LSR-GAN builds on")
    lam: float = spec(1.0, nonneg_float, "lambda of eq. 1 / eq. 4", label="lambda")
    lsr_reduction: str = spec("mean", one_of("mean", "sum"),
                              "LSR term: mean over latent dims (the reference's) or per-sample sum (literal eq. 4)")
    init: str = spec("vae", one_of("vae", "scratch"), "generator starts from the VAE decoder (vae) or at random")
    generator: str = spec("paper", one_of("paper", "vae-decoder", "custom"),
                          "the generator: the paper's decoder (Table 3) sized to the latent; vae-decoder: the VAE's own "
                          "decoder network, whatever its architecture, started from its weights; custom: a network "
                          "given in Python", since="0.3")
    discriminator: str = spec("paper", one_of("paper", "custom"), "the discriminator: the paper's (Table 3) or a "
                                                                 "network given in Python", since="0.3")
    d_warmup: int = spec(0, nonneg_int, "first steps in which only the discriminator trains, against the frozen "
                                        "initial generator (the paper's: 0)", since="0.3")
    d_lr: float | None = spec(None, optional_float, "the discriminator's learning rate (None: the same as the "
                                                    "generator's, the paper's)", since="0.3")
    g_freeze: int = spec(0, one_of(0, 1, 2, 3), "leading stages of the generator kept as the VAE decoder's (weights "
                                                "and BatchNorm statistics): 0 none (the paper's), 1 the input layer, "
                                                "2 and 3 also the first up-blocks", since="0.3")
    ema: float = spec(0.0, decay_rate, "decay of an exponential moving average of the generator's weights, which then "
                                       "renders every image (0: none, the paper's)", since="0.3")
    ema_warmup: int = spec(10, nonneg_int, "the moving average's decay after t generator updates is min(ema, (1 + t) / "
                                           "(ema_warmup + t)): it follows G closely at first (10: the common ramp, "
                                           "which over 500 updates never reaches 0.99; 0: ema from the first "
                                           "update)", since="0.3")
    code_stats: int = spec(0, nonneg_int, "batches of 32 codes mu(x) of training images over which, once stage 2 "
                                          "ends, the generator's BatchNorm statistics for rendering codes of real "
                                          "images are gathered (G(mu(x)), the sample variance, the explorer); random "
                                          "samples G(z) keep those of training on z ~ N(0, I) (0: none, the paper's)",
                           since="0.3")
    code_share: float = spec(1.0, share, "share of each of code_stats' batches of 32 drawn as training codes mu(x), "
                                         "the rest prior samples z ~ N(0, I) (1: codes only)", since="0.3")

    def __post_init__(self):
        if not isinstance(self.vae, VAEConfig):
            raise LsrError("GANConfig.vae must be a VAEConfig")
        validate(self)

    @property
    def discriminator_lr(self) -> float:
        """The discriminator's learning rate: ``d_lr``, or the generator's where it is None (the paper's)."""
        return self.lr if self.d_lr is None else self.d_lr

    def to_dict(self) -> dict:
        d = super().to_dict()
        d["vae"] = self.vae.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> GANConfig:
        if not isinstance(d, dict) or not isinstance(d.get("vae"), dict):
            raise LsrError("GANConfig: expected a mapping with a 'vae' mapping inside")
        return super().from_dict({**d, "vae": VAEConfig.from_dict(d["vae"])})


@dataclass(frozen=True)
class ClassifierConfig(_Config):
    """The classifier behind the classification metrics (section 2.3; :mod:`lsr_utils.measurement.classifier`).

    Not a TrainConfig: it trains with SGD and momentum, not the paper's Adam.
    """

    dataset: str = spec("cifar10", dataset_name, "the dataset it classifies")
    n_train: int | None = spec(None, bounded_int("n_train", optional=True),
                               "training images (balanced selection; None: all)")
    data_seed: int = spec(0, seed, "seed of the training-image selection")
    data_id: str | None = spec(None, optional_str, "fingerprint of the training images")
    image_size: int = spec(32, one_of(28, 32, 64), "image side in pixels")
    channels: int = spec(3, one_of(1, 3), "image channels")
    num_classes: int = spec(10, bounded_int("classes"), "classes")
    width: int = spec(24, bounded_int("width"), "channels of the first stage (the network is 8x wider at the end)")
    epochs: int = spec(16, bounded_int("epochs"), "epochs")
    batch_size: int = spec(256, batch_size, "images per step")
    lr: float = spec(0.2, positive_float, "peak learning rate (one cycle)")
    momentum: float = spec(0.9, nonneg_float, "SGD (Nesterov) momentum")
    weight_decay: float = spec(5e-4, nonneg_float, "weight decay of the conv and linear weights")
    label_smoothing: float = spec(0.1, nonneg_float, "label smoothing")
    augment: bool = spec(True, None, "random crops and flips")
    seed: int = spec(0, seed, "random seed")


def config_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Human-readable differences between two config dicts ("key: a -> b")."""
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out


def flat_dict(d: dict, prefix: str = "") -> dict:
    """A nested configuration dict as one level: {"vae.beta": 1.0, ...}."""
    out = {}
    for k, v in d.items():
        out.update(flat_dict(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def set_path(cfg, path: str, value):
    """``cfg`` with the field at ``path`` ("beta", "vae.beta") set to ``value`` (validated)."""
    head, _, rest = path.partition(".")
    if rest:
        return cfg.replace(**{head: set_path(getattr(cfg, head), rest, value)})
    return cfg.replace(**{head: value})


# ----------------------------------------------------------------------------- profiles
@dataclass(frozen=True)
class Profile:
    """Everything a profile decides, in one place: the sizes of a run and of its evaluation, the training recipe, the
    classifier, the sweep values, and where its outputs go. ``None`` means all images."""

    name: str
    n_train: int | None
    n_test: int | None
    vae_epochs: int
    gan_epochs: int
    why: str
    precision: str = "fp32"
    # inputs of the sample-variance metric (Tables 1-2), K renderings by both decoders each: most of an
    # evaluation's time on a CPU; its standard error over inputs is recorded beside it
    n_variance: int = 1000
    # the betas of Table 1 and the lambdas of Table 2 that the profile trains
    betas: tuple = paper.SWEEP_VALUES
    lams: tuple = paper.SWEEP_VALUES
    # the training recipe: configuration fields ("vae.lr", "ema", ...) set differently from the paper's defaults
    recipe: tuple = ()
    # the classifier the classification metrics use on a real dataset: its epochs and training images (None: all);
    # `shapes` has its own (SHAPES_CLASSIFIER)
    classifier_epochs: int = 16
    classifier_n_train: int | None = None
    # the classifier a run of this profile is *measured* with on a real dataset: the paper's (a measuring
    # instrument, not a result), except where the profile only proves the plumbing
    measured_with: str = "paper"
    # smoke: proves the plumbing; its figures and results go to runs/_smoke/, never over the committed ones, its
    # records stay out of the report while others exist, and the explorer says its runs are untrained
    plumbing_only: bool = False
    demo_variance: int = 100   # sample-variance inputs of `lsr demo`'s evaluation
    # the seeds of the beta = lambda = 1 pair whose spread (training noise) the claims' verdicts weigh
    seeds: tuple = (13, 14, 15)
    # lambda of `lsr demo`'s LSR-GAN (eq. 1; the paper's range 0.01-20). The reproduction's sweeps set their own.
    demo_lam: float = 1.0


QUICK_SWEEP = (0.01, 0.1, 1.0, 5.0, 10.0, 20.0)
# The recipe of the CPU profiles (quick, and smoke, which proves its plumbing): see the quick profile below.
QUICK_RECIPE = (("vae.lr", 1e-3), ("d_lr", 5e-5), ("ema", 0.995), ("ema_warmup", 0), ("code_stats", 100),
                ("code_share", 0.5))
# smoke proves the quick recipe's plumbing in seconds: the same fields, the statistics for codes of real images over
# 10 batches instead of 100 (3,200 generator passes were more than a smoke run's whole training)
SMOKE_RECIPE = tuple((path, 10 if path == "code_stats" else value) for path, value in QUICK_RECIPE)
CUSTOM = "custom"  # the profile of a run whose sizes match no profile

PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("smoke", 256, 128, 1, 1, "seconds, for CI and nbval: proves the plumbing, not the science", n_variance=32,
            betas=(0.1, 1.0, 20.0), lams=(0.1, 1.0, 10.0), classifier_epochs=1, classifier_n_train=256,
            measured_with="smoke", plumbing_only=True, demo_variance=32, recipe=SMOKE_RECIPE, seeds=(13, 14)),
    # quick: 6 of the paper's 8 sweep values (0.5 and 15 left out), so that the whole paper fits 2 hours on a
    # 2-core CPU (README: Reproducing the paper)
    # Its recipe converges in the few steps a CPU affords (benchmarks/RESULTS.md, "The demo's recipe"): the
    # VAE's Adam at 1e-3 (the paper's 2e-4 leaves the codes mu(x) far wider than the prior after 1,000 steps),
    # the discriminator's at 5e-5 (a fresh discriminator at 2e-4 wipes out the shape the generator started with),
    # and G(mu(x)) read from an exponential moving average of the generator's weights (decay 0.995 from the first
    # update, no ramp: an average over about the last 200 of the demo's 500 updates; the common ramp kept the decay
    # below 0.99 throughout, benchmarks/RESULTS.md, 2026-12-05), with BatchNorm statistics for rendering codes of
    # real images gathered once stage 2 ends over 100 batches of 16 training codes mu(x) + 16 prior samples z
    # (the statistics of training on z alone turn a red cross yellow; over codes alone the shape slips on some
    # seeds: benchmarks/RESULTS.md, "Statistics over a mixture of training codes and prior samples"); random
    # samples G(z) keep the statistics of training. The method (networks, losses, two stages, the generator
    # started from the decoder, z ~ N(0, I) in stage 2) is the paper's.
    Profile("quick", 10000, 1000, 4, 2, "minutes on a 2-core laptop CPU", n_variance=250,
            betas=QUICK_SWEEP, lams=QUICK_SWEEP, classifier_epochs=4,
            recipe=QUICK_RECIPE, demo_lam=5.0),
    Profile("paper", None, None, 100, 500, "the paper's schedule (Appendix D and the reference): for a GPU"),
)}

# Per-dataset sizes that differ from the profile's (a dataset's own schedule, chosen for what it must show).
DATASET_PROFILES: dict[tuple[str, str], dict] = {
    # `shapes` on a laptop: enough VAE steps (1,000) for its latent to keep which shape the object is, in fp32, the
    # arithmetic every CPU computes fast (bf16 is 2.9x faster only with bf16 instructions, and 16x *slower* without
    # them: benchmarks/RESULTS.md), to fit `lsr demo` in 10 minutes on a 2-core CPU (README: what `lsr demo` shows)
    ("shapes", "quick"): dict(n_train=8000, vae_epochs=3, gan_epochs=2,
                              why="minutes on a 2-core laptop CPU: 8,000 images, 3 VAE + 2 LSR-GAN epochs, fp32"),
    # the demo's digits: the same schedule as `shapes` (only the dataset changes)
    ("mnist-test", "quick"): dict(n_train=8000, vae_epochs=3, gan_epochs=2,
                                  why="the demo's schedule on the 8,000 training digits of mnist-test"),
}

# The `shapes` classifier: small, easy images, so a narrower net and smaller batches (100 % in 4 epochs of 5,000).
SHAPES_CLASSIFIER = dict(width=16, batch_size=64, lr=0.05, epochs=4, n_train=5000)
# smoke: one epoch, and half the width (64 features: the offline score kit_cfd needs more test images than features,
# and the smoke profile measures on 128)
SHAPES_CLASSIFIER_SMOKE = dict(SHAPES_CLASSIFIER, epochs=1, n_train=256, width=8)
# The digits' classifier on mnist-test's 8,000 training images: the same small net, without flips (a mirrored
# digit is another digit, or none). The general recipe (batch 256, one-cycle to lr 0.2) takes 125 steps there
# and diverges (16.5 % on the held-out digits); this one reaches 99.3 % in 500 steps (docs/demo.md).
DIGITS_CLASSIFIER = dict(SHAPES_CLASSIFIER, n_train=None, augment=False)
DIGITS_CLASSIFIER_SMOKE = dict(DIGITS_CLASSIFIER, epochs=1, n_train=256, width=8)


def check_profile(name: str) -> str:
    if name not in PROFILES:
        raise LsrError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}")
    return name


DEFAULT_PROFILE = "quick"  # where none is given (the edges give $LSR_PROFILE, or smoke under CI: lsr_utils.apps.environ)
CI_PROFILE = "smoke"       # under CI ($CI set), where $LSR_PROFILE is not


def plumbing_only(profile: str) -> bool:
    """Whether runs of ``profile`` only prove the plumbing (seconds of training; their outputs stay out of the
    committed figures and results, and the explorer says they are untrained). A custom run is not."""
    return profile in PROFILES and PROFILES[profile].plumbing_only


def profile_for(profile: str | None, dataset: str = "shapes") -> Profile:
    """Everything ``profile`` (default: quick) decides, for ``dataset``."""
    p = PROFILES[check_profile(profile or DEFAULT_PROFILE)]
    return replace(p, **DATASET_PROFILES.get((dataset, p.name), {}))


def sweep_values(profile: str | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The betas of Table 1 and the lambdas of Table 2 that ``profile`` trains (the paper's 8 each, or a subset)."""
    p = PROFILES[check_profile(profile or DEFAULT_PROFILE)]
    return p.betas, p.lams


def evaluation_sizes(profile: str, dataset: str) -> tuple[int | None, int]:
    """(test images, sample-variance inputs) an evaluation of a run of ``profile`` uses by default. A custom run
    (sizes of no profile) is measured on the quick profile's number of test images and the paper's variance
    inputs (1,000; what the committed CIFAR-10 record used)."""
    if profile == CUSTOM:
        return profile_for("quick", dataset).n_test, profile_for("paper", dataset).n_variance
    p = profile_for(profile, dataset)
    return p.n_test, p.n_variance


def classifier_settings(dataset: str, profile: str) -> dict:
    """The classifier fields (ClassifierConfig) of ``profile`` on ``dataset``: its sizes, geometry and classes."""
    size, channels = geometry(dataset)
    p = PROFILES[check_profile(profile)]
    if dataset == "shapes":
        sizes = SHAPES_CLASSIFIER_SMOKE if p.plumbing_only else SHAPES_CLASSIFIER
    elif dataset == "mnist-test":
        sizes = DIGITS_CLASSIFIER_SMOKE if p.plumbing_only else DIGITS_CLASSIFIER
    else:
        sizes = dict(epochs=p.classifier_epochs, n_train=p.classifier_n_train,
                     **({"width": 8} if p.plumbing_only else {}))  # smoke: as narrow as the shapes one
        if dataset == "mnist":
            sizes["augment"] = False   # no mirrored digits (crops and flips come together)
    return dict(dataset=dataset, image_size=size, channels=channels, num_classes=dataset_entry(dataset).classes, **sizes)


def measuring_profile(dataset: str, profile: str) -> str:
    """The profile of the classifier that measures a run of ``profile`` on ``dataset`` (the paper's on real data,
    so that a shortened run is measured with a classifier at the paper's accuracy; on ``shapes`` the quick one
    already classifies raw images perfectly)."""
    p = PROFILES[check_profile(profile if profile != CUSTOM else "quick")]
    if p.plumbing_only:
        return p.name
    return "quick" if dataset == "shapes" else p.measured_with


@dataclass(frozen=True)
class Option:
    """A setting a user gives by name (an option of ``lsr train-vae``/``train-gan``, a keyword of
    :func:`make_config` in a notebook): the configuration fields it sets, and the options that offer it.

    ``paths``: the fields it sets in the stage-2 configuration (whose ``.vae`` is stage 1), each to the same value;
    its help text is the first field's. ``flags``: the command ("vae": ``lsr train-vae``, "gan": ``lsr
    train-gan``) -> its option there (none: a keyword of notebooks only). ``sweeps``: the commands where several
    values train that many runs (a sweep).
    """

    name: str
    paths: tuple[str, ...]
    flags: dict = field(default_factory=dict)
    sweeps: tuple[str, ...] = ()


_BOTH = lambda flag: {"vae": flag, "gan": flag}
# Every setting a user gives by name, each said once. A new configuration field that users set gets its entry here;
# the command line and the notebooks take it from this table.
OPTIONS: dict[str, Option] = {o.name: o for o in (
    Option("beta", ("vae.beta",), _BOTH("--beta"), sweeps=("vae",)),
    Option("lam", ("lam",), {"gan": "--lam"}, sweeps=("gan",)),
    Option("gan_epochs", ("epochs",), {"gan": "--epochs"}),
    Option("vae_epochs", ("vae.epochs",), {"vae": "--epochs", "gan": "--vae-epochs"}),
    Option("n_train", ("vae.n_train",), _BOTH("--n-train")),
    Option("batch_size", ("batch_size", "vae.batch_size"), _BOTH("--batch-size")),
    Option("recon_loss", ("vae.recon_loss",), _BOTH("--recon-loss")),
    Option("precision", ("precision", "vae.precision"), _BOTH("--precision")),
    Option("seed", ("seed", "vae.seed"), _BOTH("--seed")),
    Option("lsr_reduction", ("lsr_reduction",), {"gan": "--lsr-reduction"}),
    Option("init", ("init",), {"gan": "--init"}),
    Option("data_seed", ("vae.data_seed",)),
    Option("latent_dim", ("vae.latent_dim",)),
)}


def option_field(name: str):
    """The configuration field behind option ``name`` (the first it sets): its type, check and help text."""
    cls, path = GANConfig, OPTIONS[name].paths[0]
    *heads, last = path.split(".")
    for h in heads:
        cls = {f.name: f for f in fields(cls)}[h].default_factory
    return {f.name: f for f in fields(cls)}[last]


def make_config(profile: str | None = None, *, dataset: str = "shapes", **options) -> GANConfig:
    """The stage-2 configuration of ``profile`` on ``dataset`` (its ``.vae`` is stage 1), with ``options``.

    ``options`` are names of :data:`OPTIONS` (``beta=5, lam=10, vae_epochs=3``);
    ``None`` values keep the profile's. The image geometry follows the dataset.
    """
    size, channels = geometry(dataset)
    p = profile_for(profile, dataset)
    cfg = GANConfig(vae=VAEConfig(dataset=dataset, image_size=size, channels=channels, n_train=p.n_train,
                                  epochs=p.vae_epochs, precision=p.precision), epochs=p.gan_epochs,
                    precision=p.precision)
    for path, value in p.recipe:
        cfg = set_path(cfg, path, value)
    return apply_options(cfg, options)


def apply_options(cfg: GANConfig, options: dict) -> GANConfig:
    """``cfg`` with each option applied to the fields it sets (None: left as is; n_train="all": all images)."""
    for name, value in options.items():
        if name not in OPTIONS:
            raise LsrError(f"unknown setting {name!r}; known: {', '.join(OPTIONS)}")
        if value is None:
            continue
        for path in OPTIONS[name].paths:
            cfg = set_path(cfg, path, None if (name == "n_train" and value == "all") else value)
    return cfg


RECIPE_FIELDS = ("lr", "adam_betas", "lr_warmup", "lr_decay", "batch_size", "d_warmup", "d_lr", "g_freeze", "ema",
                 "ema_warmup", "code_stats", "code_share", "lam")


def recipe_differences(cfg: GANConfig) -> list[dict]:
    """How the training recipe of ``cfg`` differs from the paper's (Appendix D and the reference): one entry per
    field of either stage that is not the paper's value."""
    paper_cfg = GANConfig(vae=VAEConfig())
    out = []
    for stage, mine, ref in (("vae", cfg.vae, paper_cfg.vae), ("lsr_gan", cfg, paper_cfg)):
        for name in RECIPE_FIELDS:
            if name == "ema_warmup" and not getattr(mine, "ema", 0):
                continue   # the ramp of a moving average that is not kept: nothing differs
            if name == "code_share" and not getattr(mine, "code_stats", 0):
                continue   # the mixture of statistics that are not gathered: nothing differs
            if hasattr(mine, name) and getattr(mine, name) != getattr(ref, name):
                paper_value = ref.discriminator_lr if name == "d_lr" else getattr(ref, name)
                if name == "ema_warmup":
                    paper_value = None   # the paper keeps no moving average, so it has no ramp
                out.append({"stage": stage, "field": name, "kit": _jsonable(getattr(mine, name)),
                            "paper": _jsonable(paper_value)})
    return out


def _jsonable(v):
    return list(v) if isinstance(v, tuple) else v


def infer_profile(cfg) -> str:
    """The profile whose sizes and recipe a configuration matches ('custom' if none)."""
    v = cfg.vae if isinstance(cfg, GANConfig) else cfg
    for name in PROFILES:
        p = profile_for(name, v.dataset)
        if v.epochs == p.vae_epochs and v.n_train == p.n_train and v.precision == p.precision and \
                (not isinstance(cfg, GANConfig) or cfg.epochs == p.gan_epochs) and _follows_recipe(cfg, p):
            return name
    return CUSTOM


def _follows_recipe(cfg, p: Profile) -> bool:
    """Whether ``cfg`` (a stage's configuration) holds the recipe fields of profile ``p`` (other fields aside)."""
    full = cfg if isinstance(cfg, GANConfig) else None
    ref = make_config(p.name, dataset=(cfg.vae if full else cfg).dataset)
    have = flat_dict(full.to_dict() if full else {"vae": cfg.to_dict()})
    want = flat_dict(ref.to_dict() if full else {"vae": ref.vae.to_dict()})
    fields_of_recipe = set(RECIPE_FIELDS) - {"lam"}   # lambda is a setting of the sweeps, not of the recipe
    recipe = lambda d: {k: v for k, v in d.items() if k.split(".")[-1] in fields_of_recipe}
    return recipe(have) == recipe(want)
