"""Everything the kit takes from the environment, read in one place: :func:`from_environment`.

Only the edges call it: the ``lsr`` command (:mod:`lsr_utils.apps.cli`) and a
notebook's :func:`lsr_utils.apps.notebook.setup` (right after its ``parameters``
cell). They pass what it read on as arguments (the profile, the data folder,
the FID weights, progress bars) and install the two data defaults that every
loader shares with :func:`install` (the cache folder and whether to download);
no other module reads an environment variable.

| variable | meaning | default |
| --- | --- | --- |
| ``LSR_PROFILE`` | the profile (smoke, quick, paper) | ``smoke`` where ``CI`` is set, else ``quick`` |
| ``LSR_DATA_ROOT`` | the folder holding local datasets | ``./data`` |
| ``LSR_OFFLINE`` | never download a dataset (``1``) | downloads where a network answers |
| ``LSR_CACHE`` | the cache of decoded datasets and Frechet statistics | ``~/.cache/lsr-kit`` |
| ``LSR_PROGRESS`` | ``0``: no progress bars | bars on |
| ``LSR_FID_WEIGHTS`` | the Inception weights file of FID | the kit's store (``lsr fid-weights``) |
| ``LSR_OUT`` | where a notebook whose ``out`` is None writes its runs, figures and results | the project's |
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..method.config import CI_PROFILE, DEFAULT_PROFILE, check_profile

_FALSE = ("", "0", "false", "no")


@dataclass(frozen=True)
class Environ:
    """What the environment variables say (see the module's table): the defaults of what a user does not give."""

    profile: str = DEFAULT_PROFILE
    data_root: Path | None = None
    offline: bool = False
    cache: Path | None = None
    progress: bool = True
    fid_weights: str | None = None
    out: Path | None = None


def from_environment(environ: Mapping[str, str]) -> Environ:
    """The settings ``environ`` (``os.environ`` at an edge) gives; a bad profile is one message."""
    profile = environ.get("LSR_PROFILE") or (CI_PROFILE if environ.get("CI", "").lower() not in _FALSE
                                             else DEFAULT_PROFILE)
    return Environ(profile=check_profile(profile),
                    data_root=Path(environ["LSR_DATA_ROOT"]) if environ.get("LSR_DATA_ROOT") else None,
                    offline=environ.get("LSR_OFFLINE", "").strip().lower() not in _FALSE,
                    cache=Path(environ["LSR_CACHE"]) if environ.get("LSR_CACHE") else None,
                    progress=environ.get("LSR_PROGRESS", "1") != "0",
                    fid_weights=environ.get("LSR_FID_WEIGHTS") or None,
                    out=Path(environ["LSR_OUT"]) if environ.get("LSR_OUT") else None)


def install(env: Environ) -> Environ:
    """Set the data defaults every loader shares (the cache folder, downloads allowed or not); returns ``env``."""
    from ..data import cache

    cache.set_defaults(cache=env.cache, offline=env.offline)
    return env
