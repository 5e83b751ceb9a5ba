"""Layer 7 of 9, training: turning configurations and data into finished runs.

``loop`` (``fit``: the one training loop, over a ``TrainingState`` that a checkpoint holds), ``train``
(``train_vae``, ``train_lsr_gan``: one run of each stage), ``sweep`` (``train_sweep``: several runs that differ in
one value, stacked where that pays), ``any_vae`` (an LSR-GAN on any VAE's frozen encoder; training a pythae model).
"""
