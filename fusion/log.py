"""Logging through loguru (as ttnn does), quiet by default: `enable_logging()` or `ttfuse -v`."""
from __future__ import annotations

import sys

from loguru import logger

logger.disable("fusion")

_SINK = None


def enable_logging(level: str = "INFO") -> None:
    global _SINK
    logger.enable("fusion")
    if _SINK is None:
        _SINK = logger.add(sys.stderr, level=level, filter="fusion", format="ttfuse | {message}")
