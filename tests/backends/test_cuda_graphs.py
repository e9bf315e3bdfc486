"""The host side of the shared CUDA-graph runner (emoedge.backends.cuda_graphs): outputs packed into one float32
array inside a graph, so one copy brings them all, and unpacked by name with each output's width intact.

Capturing and replaying need a GPU: tests/gpu/test_gpu_graphs.py runs them (PyTorch and TensorRT backends).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emoedge.backends.cuda_graphs import pack, unpack

NAMES, WIDTHS = ["scores", "modality_weights", "vad"], [26, 3, 3]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_packed_outputs_unpack_to_each_output_in_float32(dtype):
    generator = torch.Generator().manual_seed(0)
    outputs = [torch.randn(5, width, generator=generator).to(dtype) for width in WIDTHS]
    packed = pack(outputs)
    assert packed.dtype == torch.float32 and tuple(packed.shape) == (5, sum(WIDTHS))
    unpacked = unpack(packed.numpy(), NAMES, WIDTHS)
    assert list(unpacked) == NAMES
    for name, output in zip(NAMES, outputs):
        assert unpacked[name].dtype == np.float32
        np.testing.assert_array_equal(unpacked[name], output.float().numpy())


def test_unpacked_outputs_do_not_change_when_the_packed_buffer_is_reused():
    packed = pack([torch.ones(2, 26), torch.full((2, 3), 2.0)]).numpy()
    unpacked = unpack(packed, NAMES[:2], WIDTHS[:2])
    packed[:] = -1.0  # the next call writes the same pinned buffer
    assert (unpacked["scores"] == 1.0).all() and (unpacked["modality_weights"] == 2.0).all()


def test_widths_that_do_not_add_up_to_the_packed_columns_are_refused():
    with pytest.raises(ValueError, match=r"packed outputs \[2, 29\] do not hold"):
        unpack(np.zeros((2, 29), np.float32), NAMES, WIDTHS)
