"""lrsearch: learning-rate studies on Optuna with a population training engine."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Problem", "Report", "TrainResult", "__version__", "run", "train"]

#: Where each public name lives: loaded (with torch) on first use, so `import lrsearch` stays instant.
_PUBLIC = {
    "Problem": "lrsearch.engine.problem",
    "train": "lrsearch.api",
    "TrainResult": "lrsearch.api",
    "run": "lrsearch.runs",
    "Report": "lrsearch.runs",
}


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'lrsearch' has no attribute {name!r}")
