"""Progress bars that render as widgets in Jupyter and as text elsewhere."""
from __future__ import annotations

import sys


def progress_bar(iterable=None, **kwargs):
    """``tqdm.auto.tqdm`` (a widget in notebooks, text in a terminal); ``disable=True`` for none (the callers'
    ``progress`` argument: ``--no-progress`` or ``$LSR_PROGRESS=0`` at the edges)."""
    from tqdm.auto import tqdm

    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("mininterval", 0.5)
    return tqdm(iterable, **kwargs)
