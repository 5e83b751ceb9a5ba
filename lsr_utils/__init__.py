"""lsr-kit: a reproduction kit for "Imagining the Latent Space of a Variational Auto-Encoder" (LSR-GAN).

Importing the package is cheap: it imports nothing but this file; each
submodule is imported on first use (``lsr_utils.train``, ...). The modules,
bottom to top (each imports only from those above it in this list):

    errors, pixels, files, progress   messages, pixel ranges, atomic files and untrusted reads, progress bars
    config                            configurations, profiles (everything a profile decides), recipes
    settings                          what the environment sets, read only at the edges (lsr, a notebook's setup)
    nn                                the three networks, reparameterize, fold_batchnorm, sweep stacking
    losses                            eq. 2-5 and Appendix A
    paper                             the paper's numbers
    data                              datasets (one module per source), the cache, batches on the device
    runtime                           device, seed, autocast, Adam, compile, Ctrl-C and SIGTERM
    runs                              run folders: status, config, lock, checkpoint, start, finish, loss log
    steps                             one step of each stage in numbered phases; CUDA-graph capture
    stage                             build_stage: the one place a stage's networks, optimisers and step are built
    loop                              the one training loop: fit(folder, stage, batches, options)
    train                             train_vae, train_lsr_gan (one run each), train_sweep
    external                          any VAE (pythae, a module) as a frozen encoder; render_latent
    metrics, fid, classifier          the paper's metrics, FID, the classifier
    evaluate                          one evaluation record per run
    report, plotting, selfcheck       tables, figures, the step self-check
    notebook, widgets, demo, reproduce, cli   notebooks, the latent explorer, lsr demo, lsr reproduce, the lsr command
"""
__version__ = "0.3.0"

import importlib

_SUBMODULES = ("errors", "pixels", "files", "progress", "config", "settings", "nn", "losses", "paper", "data",
               "runtime", "runs", "steps", "stage", "loop", "train", "external", "metrics", "fid", "classifier",
               "evaluate", "report", "plotting", "selfcheck", "notebook", "widgets", "demo", "reproduce", "cli")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
