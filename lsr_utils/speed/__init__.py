"""Layer 4 of 9, speed: the method's steps, faster, with the same math.

``captured`` (a step replayed as a CUDA graph), ``stacked`` (a sweep's members side by side as one wide network, an
adapter over the method's single-member losses), ``selfcheck`` (both checked against the plain step on this
machine).
"""
