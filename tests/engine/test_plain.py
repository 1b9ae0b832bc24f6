from __future__ import annotations

import numpy as np
import torch

from lrsearch.engine.data import load_fashion_mnist
from lrsearch.engine.plain import PerItemImages, Shuffle
from tests.conftest import REAL_FASHION_MNIST


def test_shuffle_draws_one_permutation_per_epoch_from_the_generator() -> None:
    sampler = Shuffle(10, torch.Generator().manual_seed(3))
    reference = torch.Generator().manual_seed(3)
    for _ in range(3):
        assert list(sampler) == torch.randperm(10, generator=reference).tolist()


def test_per_item_images_give_back_the_split(isolated_cache) -> None:
    data = load_fashion_mnist(REAL_FASHION_MNIST, download=False)
    items = PerItemImages(data.val, data.mean, data.std)
    assert len(items) == len(data.val)
    for i in (0, 17, 9_999):
        image, label = items[i]
        assert label == int(data.val.y[i])
        np.testing.assert_allclose(image.numpy(), data.val.x[i].numpy(), atol=1e-5)
