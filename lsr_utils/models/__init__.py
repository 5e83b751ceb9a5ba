"""Layer 6 of 9, models: finished runs made networks again.

``external`` (a VAE trained elsewhere, pythae's or any module, bound to a run folder by the SHA-256 of its
weights), ``finished`` (``VAERun``, ``GANRun``, ``load_run``: a run folder's weights loaded and checked, and how an
LSR-GAN renders codes).
"""
