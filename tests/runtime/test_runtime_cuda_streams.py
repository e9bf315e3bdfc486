"""The CUDA details of the runtime leave a CPU run as it was: no streams for the read-ahead thread, no pinned copies.

What they do on a GPU (the detector thread's own streams, pinned non-blocking uploads) cannot be seen here: these
tests only show that, without CUDA, the helpers choose nothing and create no CUDA state.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from emoedge.runtime.ahead import Ahead, gpus_in_use, own_streams
from emoedge.runtime.preprocess import upload


def test_without_cuda_the_read_ahead_thread_gets_no_streams_and_no_cuda_context():
    assert gpus_in_use() == []
    with own_streams() as finish:
        finish()
    assert not torch.cuda.is_initialized()


def test_read_ahead_items_arrive_in_order_from_its_own_thread():
    producers = []

    def items():
        for i in range(3):
            producers.append(threading.current_thread().name)
            yield i

    with Ahead(items(), lambda s: None, lambda: None) as ahead:
        assert list(ahead) == [0, 1, 2]
    assert producers == ["emoedge-ahead"] * 3


def test_upload_to_the_cpu_shares_the_array_and_pins_nothing():
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    tensor = upload(array, torch.device("cpu"))
    array[0, 0] = 42.0
    assert tensor[0, 0].item() == 42.0  # the same memory, as before: no copy on a CPU
    assert not tensor.is_pinned() and tensor.device == torch.device("cpu")
