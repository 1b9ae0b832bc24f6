"""lrsearch: learning-rate studies on Optuna with a population training engine."""

from __future__ import annotations

__version__ = "0.1.0"
