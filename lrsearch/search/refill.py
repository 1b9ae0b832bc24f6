"""When a population's free slots are worth a round of asks.

A round costs about the same however few trials it asks for (failing stale trials, reading the study, the
sampler's work per round, writing the round), and while it runs the population, on a GPU its device too,
stands idle. A free slot costs its share of every epoch it stays free. Asking as each slot frees (a member
pruned or diverged) pays a round per epoch for a member or two; asking only once the population has
emptied leaves it training a few members for long. So, as one rents skis until the rent would have bought
them: ask once the free slots' share of the epochs since the last round, with the next epoch's, reaches
what that round cost besides its asks. A model whose epoch takes seconds refills at once; one whose epoch
is a fraction of a round (the blobs MLP) refills in batches. An empty population always asks.
"""

from __future__ import annotations

import dataclasses

__all__ = ["Refill"]


@dataclasses.dataclass
class Refill:
    """The rule for one population: ``price``, the last round's seconds besides its asks; ``idle``, the
    free slots' share of the epochs' seconds since."""

    price: float = 0.0
    idle: float = 0.0

    def due(self, free: int, size: int, epoch: float) -> bool:
        """Whether ``free`` of ``size`` slots are worth a round now, an epoch taking ``epoch`` seconds."""
        return free >= size or self.idle + free / size * epoch >= self.price

    def trained(self, free: int, size: int, epoch: float) -> None:
        """An epoch of ``epoch`` seconds ran with ``free`` of ``size`` slots free."""
        self.idle += free / size * epoch

    def asked(self, price: float) -> None:
        """A round ended that cost ``price`` seconds besides its asks."""
        self.price, self.idle = price, 0.0
