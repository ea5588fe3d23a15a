"""README command 1 (tools/setup_env.sh): idempotent, and clear when a
prerequisite is missing."""
import os
import subprocess

from tests.helpers import REPO_ROOT


def run_setup(**env):
    script = REPO_ROOT / 'tools' / 'setup_env.sh'
    return subprocess.run(['bash', str(script)],
                          cwd=REPO_ROOT,
                          capture_output=True,
                          text=True,
                          timeout=600,
                          env=dict(os.environ, **env))


def test_missing_python_is_named(tmp_path):
    proc = run_setup(
        MMBOAT_PYTHON='python3.11-that-does-not-exist',
        MMBOAT_VENV=str(tmp_path / 'venv'))
    assert proc.returncode != 0
    assert "no 'python3.11-that-does-not-exist' found" in proc.stderr
    assert 'Python 3.11' in proc.stderr
    assert not (tmp_path / 'venv').exists()


def test_second_run_installs_nothing():
    # the test suite runs inside the environment the script made
    proc = run_setup()
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert 'using the existing virtual environment' in out
    assert 'torch 2.14.1 / torchvision 0.29.1 already installed' in out
    assert 'mmcv 2.1.0 with compiled ops already installed' in out
    assert 'already installed' in out.split('mmcv 2.1.0 with compiled ops')[1]
    assert 'building mmcv' not in out and 'installing' not in out.replace(
        'already installed', '')
