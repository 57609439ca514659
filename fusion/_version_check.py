"""Fail at import, in one line, when ttnn is missing or not the pinned version."""
from __future__ import annotations

import sys
from importlib import metadata

PINNED_TTNN = "0.81.1"
FIX = "bash scripts/setup.sh   (or: pip install ttnn==" + PINNED_TTNN + " in a Python 3.10/3.12 venv)"


class TTNNVersionError(ImportError):
    pass


def installed_ttnn() -> str | None:
    try:
        return metadata.version("ttnn")
    except metadata.PackageNotFoundError:
        return None


def check_ttnn(version: str | None = None) -> None:
    version = installed_ttnn() if version is None else version
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    if version is None:
        raise TTNNVersionError(
            f"ttfuse needs ttnn=={PINNED_TTNN}, but ttnn is not installed for Python {py} "
            f"(ttnn ships wheels for Python 3.10 and 3.12 only); fix: {FIX}")
    if version != PINNED_TTNN:
        raise TTNNVersionError(f"ttfuse needs ttnn=={PINNED_TTNN}, but ttnn {version} is installed; fix: {FIX}")
