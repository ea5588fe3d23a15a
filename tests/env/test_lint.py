"""The lint of README command 2: tools/run_tests.sh runs flake8, isort and
yapf with the project's settings (setup.cfg) before pytest, and a lint
error stops it before any test runs."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

BIN = Path(sys.executable).parent
VENV = BIN.parent  # the environment these tests run in
SETUP_CFG = REPO_ROOT / 'setup.cfg'
RUN_TESTS = REPO_ROOT / 'tools' / 'run_tests.sh'

# imports out of order, two of them unused, bad spacing, a comment over 79
# columns (that no formatter shortens)
BAD = '''import mmboat
import os
import torch
import sys

x = {  'a':1}
print(mmboat, torch, x)
''' + '#' * 80 + '\n'
SORTED_IMPORTS = 'import os\nimport sys\n\nimport torch\n\nimport mmboat\n'


def run(*command, cwd=REPO_ROOT, **env):
    return subprocess.run([str(c) for c in command],
                          cwd=cwd,
                          capture_output=True,
                          text=True,
                          timeout=300,
                          env=dict(os.environ, **env))


def tool(name):
    path = BIN / name
    assert path.is_file(), (f'{path} not found: install requirements/tests.txt'
                            ' (bash tools/setup_env.sh)')
    return path


def test_repository_passes_lint():
    proc = run('bash', RUN_TESTS, '--lint-only', MMBOAT_VENV=VENV)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert '[mmboat lint] passed' in proc.stdout
    assert 'test session starts' not in proc.stdout  # --lint-only: no tests


def test_flake8_reports_a_bad_file_with_the_project_config(tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text(BAD)
    proc = run(tool('flake8'), '--config', SETUP_CFG, bad)
    assert proc.returncode == 1
    codes = {line.split()[1] for line in proc.stdout.splitlines()}
    assert codes >= {'F401', 'E501', 'E201', 'E231'}, proc.stdout
    assert 'bad.py:8:80: E501 line too long (80 > 79 characters)' in \
        proc.stdout


def test_isort_sorts_with_the_project_sections(tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text(BAD)
    proc = run(
        tool('isort'), '--settings-path', SETUP_CFG, '--check-only', bad)
    assert proc.returncode == 1
    run(tool('isort'), '--settings-path', SETUP_CFG, bad)
    # standard library, third party, then mmboat (known_first_party)
    assert bad.read_text().startswith(SORTED_IMPORTS)


def test_yapf_formats_with_the_project_style(tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text(BAD)
    proc = run(tool('yapf'), '--style', SETUP_CFG, '--diff', bad)
    assert proc.returncode == 1
    assert "+x = {'a': 1}" in proc.stdout


@pytest.fixture
def repo_copy(tmp_path):
    """The lint's script and settings in a repository of their own, with a
    passing test; its lint runs in the real environment."""
    (tmp_path / 'tools').mkdir()
    shutil.copy(RUN_TESTS, tmp_path / 'tools')
    shutil.copy(SETUP_CFG, tmp_path)
    for folder in ('mmboat', 'configs', 'tests'):
        (tmp_path / folder).mkdir()
    (tmp_path / 'setup.py').write_text('print(1)\n')
    test_ok = tmp_path / 'tests' / 'test_ok.py'
    test_ok.write_text('def test_ok():\n    pass\n')
    return tmp_path


def test_lint_error_stops_before_the_tests(repo_copy):
    script = repo_copy / 'tools' / 'run_tests.sh'
    proc = run('bash', script, 'tests', cwd=repo_copy, MMBOAT_VENV=VENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '[mmboat lint] passed' in proc.stdout
    assert '1 passed' in proc.stdout  # extra arguments went to pytest

    (repo_copy / 'mmboat' / 'bad.py').write_text(BAD)
    proc = run('bash', script, 'tests', cwd=repo_copy, MMBOAT_VENV=VENV)
    assert proc.returncode == 1
    assert 'passed' not in proc.stdout.replace('[mmboat lint] passed', '')
    assert 'mmboat/bad.py:8:80: E501' in proc.stdout
    assert '[mmboat lint] FAILED: flake8 isort yapf' in proc.stderr
    # the commands it prints: isort and yapf fix what they report, flake8
    # then lists what is left to fix by hand
    fixes = [
        line.split('[mmboat lint]   ', 1)[1]
        for line in proc.stderr.splitlines()
        if line.startswith('[mmboat lint]   ')
    ]
    tools = [Path(f.split()[0]).name for f in fixes]
    assert tools == ['isort', 'yapf', 'flake8']
    for fix in fixes[:2]:
        subprocess.run(fix, shell=True, cwd=repo_copy, check=True)
    proc = run('bash', script, '--lint-only', cwd=repo_copy, MMBOAT_VENV=VENV)
    assert proc.returncode == 1
    assert '[mmboat lint] FAILED: flake8 (' in proc.stderr
    left = {line.split()[1] for line in proc.stdout.splitlines()[1:]}
    assert left == {'F401', 'E501'}, proc.stdout
    fixed = (repo_copy / 'mmboat' / 'bad.py').read_text()
    assert fixed.startswith(SORTED_IMPORTS + "\nx = {'a': 1}\n")
