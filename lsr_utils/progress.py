"""Progress bars that render as widgets in Jupyter and as text elsewhere."""
from __future__ import annotations

import os
import sys


def progress_bar(iterable=None, **kwargs):
    """``tqdm.auto.tqdm`` (a widget in notebooks, text in a terminal).

    Set ``LSR_PROGRESS=0`` to silence bars (e.g. in logs).
    """
    from tqdm.auto import tqdm

    if os.environ.get("LSR_PROGRESS", "1") == "0":
        kwargs["disable"] = True
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("mininterval", 0.5)
    return tqdm(iterable, **kwargs)
