"""Layer 1 of 9, the base: what every layer above needs and nothing of the paper.

``errors`` (the one error type the edges turn into one message), ``pixels`` (the one place pixel ranges are
converted), ``limits`` (how large a size read from outside may be), ``files`` (the one atomic writer and the one
reader of untrusted files), ``progress`` (progress bars), ``runtime`` (device, seeding, autocast, Adam, compile,
Ctrl-C and SIGTERM, and the machine every record names).
"""
