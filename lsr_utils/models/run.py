"""What every finished run holds once loaded, whoever trained it: :class:`Finished`."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Finished:
    """A finished run: its folder and configuration; its history, whether this call found it finished (``reused``)
    rather than training it, and the SHA-256 of the weights it was loaded with (keywords, after each kind's
    networks)."""

    path: Path
    config: object
    history: dict = field(default_factory=dict, kw_only=True)
    reused: bool = field(default=True, kw_only=True)
    weights_sha256: str | None = field(default=None, kw_only=True)
