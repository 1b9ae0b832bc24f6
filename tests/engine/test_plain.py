from __future__ import annotations

import numpy as np
import torch

from lrsearch.engine.data import Split, load_fashion_mnist
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


class _OnDevice(torch.Tensor):
    """A tensor that, as a CUDA one, becomes a NumPy array only once copied to the host."""

    def numpy(self, *args: object, **kwargs: object) -> np.ndarray:
        raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy it first.")

    def cpu(self, *args: object, **kwargs: object) -> torch.Tensor:
        return self.as_subclass(torch.Tensor).clone()


def test_per_item_images_read_a_split_on_a_device_through_the_host() -> None:
    x = torch.rand(6, 1, 4, 4)
    y = torch.arange(6) % 3
    on_device = Split(x.as_subclass(_OnDevice), y.as_subclass(_OnDevice))
    with_host = PerItemImages(Split(x, y), 0.5, 0.25)
    items = PerItemImages(on_device, 0.5, 0.25)
    for i in range(6):
        assert items[i][1] == with_host[i][1] == int(y[i])
        assert torch.equal(items[i][0], with_host[i][0])
