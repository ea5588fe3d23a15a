import importlib.util
import os
import subprocess
import sys
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


def run_tool(script: Path, *args) -> subprocess.CompletedProcess:
    """Run a script of tools/ in a fresh interpreter from the repo root."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(REPO_ROOT), env.get('PYTHONPATH', '')])
    return subprocess.run([sys.executable, str(script), *map(str, args)],
                          cwd=REPO_ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)


def call_tool_main(script: Path, *args):
    """A tools/ script's ``main(argv)`` in-process: its SystemExit code, or
    0 when it returns."""
    spec = importlib.util.spec_from_file_location(script.stem, script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        module.main([str(a) for a in args])
    except SystemExit as e:
        return e.code
    return 0


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'slow: end-to-end runs (deselect with -m "not slow")')
