from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_FIXTURES = REPO_ROOT.parent / 'shared' / 'fixtures' / 'boat-reference'


def reference_fixture(name: str) -> Path:
    """Path of a file produced by the published BOAT code, or skip."""
    path = REFERENCE_FIXTURES / name
    if not path.is_file():
        pytest.skip(f'reference fixture {path} is absent: these tests need '
                    'the ../shared/fixtures/boat-reference/ folder beside '
                    'the repository (CI always has it)')
    return path


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'slow: end-to-end runs (deselect with -m "not slow")')
