from __future__ import annotations

import itertools

import pytest
import torch

from lrsearch.engine import load_problem
from lrsearch.engine.sizing import fastest_population


def test_the_size_is_where_doubling_stops_paying() -> None:
    problem = load_problem("blobs", device=torch.device("cpu"))
    gain = 1.15
    sizing = fastest_population(problem, most=12, gain=gain)
    tried = list(sizing.rates)
    assert tried == [1, 2, 4, 8, 12][: len(tried)] and sizing.size in tried
    # Every size up to the chosen one paid its doubling; the next one tried (if any) did not.
    chosen = tried.index(sizing.size)
    assert all(sizing.rates[b] >= gain * sizing.rates[a] for a, b in itertools.pairwise(tried[: chosen + 1]))
    if chosen + 1 < len(tried):
        assert sizing.rates[tried[chosen + 1]] < gain * sizing.rates[sizing.size]
    assert sizing.describe().startswith("member-updates/s by population size: 1: ")


def test_one_member_at_most_is_one() -> None:
    problem = load_problem("blobs", device=torch.device("cpu"))
    assert fastest_population(problem, most=1).size == 1
    with pytest.raises(ValueError, match="most must be at least 1"):
        fastest_population(problem, most=0)
