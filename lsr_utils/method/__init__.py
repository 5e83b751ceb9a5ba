"""Layer 3 of 9, the method: the paper's LSR-GAN as code, with no file of its own.

``config`` (the typed configurations of the two stages; the profiles, everything a profile decides; the one table
of settings users give by name), ``paper`` (the paper's numbers), ``nn`` (Table 3's networks), ``losses`` (eq. 2-5,
Appendix A), ``steps`` (one optimisation step of each stage, in numbered phases), ``stage`` (``build_stage``: the
one place a stage's networks, optimisers and step are made).
"""
