import pytest


@pytest.fixture
def one_thread():
    """Float64 depthwise convolutions take the slow per-group path of
    PyTorch; with two OpenMP threads on two busy cores that path is ~100x
    slower than with one (measured: 24 s vs 1.3 s for the BOAT-CSWin
    fixture model)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
