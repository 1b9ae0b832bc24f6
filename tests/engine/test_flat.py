from __future__ import annotations

import torch

from lrsearch.engine.flat import FlatLayout


def test_pack_and_views_round_trip_and_share_memory() -> None:
    tensors = [torch.randn(3, 2, 4), torch.randn(3, 5), torch.randn(3, 1, 2, 2)]
    layout = FlatLayout([t.shape[1:] for t in tensors])
    assert layout.width == 8 + 5 + 4
    flat = layout.pack(tensors)
    assert flat.shape == (3, 17)
    views = layout.views(flat)
    for view, tensor in zip(views, tensors, strict=True):
        assert torch.equal(view, tensor)
    flat.mul_(2)  # the views are the buffer's rows
    for view, tensor in zip(views, tensors, strict=True):
        assert torch.equal(view, 2 * tensor)
    views[1][2, 3] = 7.0
    assert flat[2, 8 + 3] == 7.0


def test_pack_takes_tensors_of_any_strides() -> None:
    transposed = torch.randn(3, 4, 2).transpose(1, 2)  # as autograd may give a gradient
    layout = FlatLayout([(2, 4), (1,)])
    flat = layout.pack([transposed, torch.ones(3, 1)])
    assert torch.equal(layout.views(flat)[0], transposed)


def test_a_lone_tensor_is_only_reshaped() -> None:
    tensor = torch.randn(4, 2, 3)
    assert FlatLayout([(2, 3)]).pack([tensor]).data_ptr() == tensor.data_ptr()
