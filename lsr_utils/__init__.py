"""lsr-kit: a reproduction kit for "Imagining the Latent Space of a Variational Auto-Encoder" (LSR-GAN).

The library is a stack of layers, one package each; a module imports only from
its own layer and those below it (``tests/test_layers.py`` checks it, and that
no two modules import each other). Bottom to top:

    base         errors, pixel ranges, limits, atomic files and untrusted reads, progress bars, the runtime
    data         the datasets: one entry each in data.registry, one module per source, the cache, batches
    method       the paper's method: configurations and profiles, the networks, the losses, one step per stage,
                 the stage builder
    speed        the same math, faster: a step replayed as a CUDA graph, sweep members stacked, the self-check
    storage      run folders: status, lock, the checkpoint format, the loss log
    models       finished runs loaded back (VAERun, GANRun, rendering), VAEs trained elsewhere
    training     the one loop (fit), one run of each stage (train_vae, train_lsr_gan), sweeps, any VAE's renderer
    measurement  the paper's metrics, FID, the classifier, one evaluation record per run, the report
    apps         the edges: the environment, the lsr command, the demo, the reproduction, jobs, notebooks, widgets,
                 figures

Importing the package is cheap: it imports nothing but this file; each module
is imported where it is used (``from lsr_utils.training.train import
train_vae``). ``python -m lsr_utils`` is the ``lsr`` command.
"""
__version__ = "0.3.0"

LAYERS = ("base", "data", "method", "speed", "storage", "models", "training", "measurement", "apps")
