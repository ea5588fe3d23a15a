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


#: the longest tests (minutes each), started first
LONGEST = ('tests/tools/test_quick_start.py::',
           'tests/models/backbones/test_backbone_contract.py::'
           'test_backbone_compiles_once_per_cluster_depth')


def pytest_collection_modifyitems(items):
    """The longest tests first, then the other slow ones, then the rest:
    with two workers (tools/run_tests.sh runs ``pytest -n 2``) the long
    runs start at once and the short tests fill the time around them."""

    def rank(item):
        if item.nodeid.startswith(LONGEST):
            return 0
        return 1 if item.get_closest_marker('slow') else 2

    items.sort(key=rank)
