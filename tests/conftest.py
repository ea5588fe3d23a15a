import pytest

# Not for new imports: tests import their helpers from tests.helpers. Kept
# until tests/models/layers (being rewritten) imports it from there.
from tests.helpers import reference_fixture  # noqa: F401


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


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'slow: end-to-end runs (deselect with -m "not slow")')
