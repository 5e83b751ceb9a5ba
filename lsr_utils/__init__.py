"""lsr-kit: a reproduction kit for "Imagining the Latent Space of a Variational Auto-Encoder" (LSR-GAN).

Importing the package is cheap: it imports nothing but this file; each
submodule is imported on first use (``lsr_utils.train``, ...). The modules,
bottom to top (each imports only from those above it in this list):

    errors, pixels, files, progress   messages, pixel ranges, atomic files, progress bars
    config                            configurations, profiles, settings
    nn                                the three networks, reparameterize, fold_batchnorm, sweep stacking
    losses                            eq. 2-5 and Appendix A
    paper                             the paper's numbers
    data                              datasets (one module per source), the cache, batches on the device
    runtime                           device, seed, autocast, Adam, compile, Ctrl-C
    runs                              run folders: status, config, lock, checkpoint, start, finish
    loop                              the one training loop
    steps                             the VAE and GAN steps (M stacked members), CUDA-graph capture
    train                             the two stages and their sweeps; loading runs
    metrics, fid, classifier          the paper's metrics, FID, the classifier
    evaluate                          one evaluation record per run
    report, plotting, selfcheck       tables, figures, the step self-check
    notebook, widgets, demo, reproduce, cli   notebooks, the latent explorer, lsr demo, lsr reproduce, the lsr command
"""
__version__ = "0.2.0"

import importlib

_SUBMODULES = ("errors", "pixels", "files", "progress", "config", "nn", "losses", "paper", "data", "runtime", "runs",
               "loop", "steps", "train", "metrics", "fid", "classifier", "evaluate", "report", "plotting",
               "selfcheck", "notebook", "widgets", "demo", "reproduce", "cli")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
