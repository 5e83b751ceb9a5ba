"""Layer 9 of 9, the applications: the edges, where a user meets the kit.

``environ`` (what the environment sets, read only here), ``cli`` (the ``lsr`` command), ``demo`` (``lsr demo``),
``reproduce`` (``lsr reproduce``), ``jobs`` (units of work and their executors), ``notebook`` (the notebooks'
helpers and headless sweeps), ``widgets`` (the latent explorer), ``plotting`` (figures as files).
"""
