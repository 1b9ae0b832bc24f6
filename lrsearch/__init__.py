"""lrsearch: learning-rate studies on Optuna with a population training engine."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Problem", "__version__"]


def __getattr__(name: str) -> Any:
    # The public API loads torch on first use: `lrsearch --help` and `import lrsearch` stay instant.
    if name == "Problem":
        from lrsearch.problem import Problem

        return Problem
    raise AttributeError(f"module 'lrsearch' has no attribute {name!r}")
