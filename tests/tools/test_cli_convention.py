"""The command-line convention of every script under tools/: given a config
or file that does not exist, it exits with status 1 or 2, names the missing
path and prints no traceback; with ``MMBOAT_DEBUG=1`` (or ``--debug`` where
the parser is shared) it prints the traceback of the error instead.

The scripts are discovered: a new script without a row in ``MISSING`` fails
:func:`test_every_script_has_a_row`, so none escapes the convention.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools'
NOPE = 'nope/missing.py'
NOPE_PTH = 'nope/missing.pth'
NOPE_IMG = 'nope/missing.jpg'
TINY_CLS = str(REPO / 'configs' / 'tiny' / 'boat-swin-nano_tiny-shapes.py')

#: script (relative to tools/) -> the arguments that name a missing file;
#: None: the script takes no input file (the reason is in the comment)
MISSING = {
    'analysis_tools/benchmark.py': [NOPE],
    'analysis_tools/benchmark_fsla.py': None,  # no input: synthetic tensors
    # runs the repository's tiny configs; its own inputs are options
    'analysis_tools/fsla_ablation.py': None,
    'analysis_tools/get_flops.py': [NOPE],
    'analysis_tools/model_zoo.py': [NOPE],
    'analysis_tools/plot_pretraining.py': ['nope/work_dir', '--out', 'x.png'],
    'analysis_tools/visualize_clusters.py': [NOPE_IMG, TINY_CLS],
    'demo/image_demo.py': [NOPE_IMG, TINY_CLS],
    'deployment/export_onnx.py': [NOPE, '--shape', '8', '8'],
    'misc/make_tiny_datasets.py': None,  # writes data, reads nothing
    'misc/publish_tiny_checkpoint.py': ['nope/work_dir'],
    'model_converters/boat_cswin_to_mmboat.py': [NOPE_PTH, 'out.pth'],
    'model_converters/boat_swin_to_mmboat.py': [NOPE_PTH, 'out.pth'],
    'quick_start.py': None,  # writes its data, reads nothing
    'test.py': [TINY_CLS, NOPE_PTH],
    'train.py': [NOPE],
    'dist_train.sh': [NOPE, '1'],
    'dist_test.sh': [TINY_CLS, NOPE_PTH, '1'],
    'slurm_train.sh': None,  # needs srun: tests/tools/test_dist.py
    'slurm_test.sh': None,  # idem
    'dist_launch.sh': None,  # called by dist_train.sh / dist_test.sh
    'slurm_launch.sh': None,  # called by slurm_train.sh / slurm_test.sh
    'run_tests.sh': None,  # the test runner itself
    'setup_env.sh': None,  # the installer: tests/env/test_setup_script.py
}


def scripts():
    return sorted(
        str(p.relative_to(TOOLS)) for p in TOOLS.rglob('*')
        if p.suffix in ('.py', '.sh') and '__pycache__' not in p.parts and (
            p.suffix == '.sh' or "__name__ == '__main__'" in p.read_text()))


def test_every_script_has_a_row():
    assert scripts() == sorted(MISSING), (
        'add a row to MISSING for each new script under tools/ (or remove '
        'the row of a removed one)')


def run_script(script, args, cwd, debug=None):
    """Run ``tools/<script> args`` in ``cwd``; ``MMBOAT_DEBUG`` is ``debug``,
    or unset."""
    path = TOOLS / script
    command = (['bash', str(path)] if script.endswith('.sh') else
               [sys.executable, str(path)]) + list(args)
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        OMP_NUM_THREADS='1',
        PYTHON=sys.executable)
    env.pop('MMBOAT_DEBUG', None)
    if debug is not None:
        env['MMBOAT_DEBUG'] = debug
    proc = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    return proc, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    'script', [s for s in sorted(MISSING) if MISSING[s] is not None])
def test_missing_input_is_a_clear_error(script, tmp_path):
    proc, out = run_script(script, MISSING[script], tmp_path)
    assert proc.returncode in (1, 2), out[-3000:]
    assert 'Traceback' not in out, out[-3000:]
    assert 'nope' in out, out[-3000:]
    # nothing was written into the working directory
    assert sorted(p.name for p in tmp_path.iterdir()) == []


#: representative tools: the shared runner parser, a converter, the tools
#: that import mmboat lazily
DEBUGGED = [
    'train.py', 'test.py', 'model_converters/boat_swin_to_mmboat.py',
    'demo/image_demo.py', 'deployment/export_onnx.py'
]


@pytest.mark.parametrize('script', DEBUGGED)
def test_debug_shows_the_traceback(script, tmp_path):
    """MMBOAT_DEBUG=1: the same missing-file call raises the error itself,
    traceback and all, and still fails; MMBOAT_DEBUG=0 is the default."""
    proc, out = run_script(script, MISSING[script], tmp_path, debug='1')
    assert proc.returncode != 0, out[-3000:]
    assert 'Traceback (most recent call last)' in out, out[-3000:]
    assert 'nope' in out, out[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    proc, out = run_script(script, MISSING[script], tmp_path, debug='0')
    assert proc.returncode in (1, 2), out[-3000:]
    assert 'Traceback' not in out, out[-3000:]


@pytest.mark.parametrize(
    'script', ['train.py', 'model_converters/boat_cswin_to_mmboat.py'])
def test_debug_option_of_the_shared_parsers(script, tmp_path):
    """``--debug`` of the shared parsers (tools/train.py and tools/test.py,
    the converters) is MMBOAT_DEBUG=1."""
    proc, out = run_script(script, MISSING[script] + ['--debug'], tmp_path)
    assert proc.returncode != 0, out[-3000:]
    assert 'Traceback (most recent call last)' in out, out[-3000:]
    assert 'nope' in out, out[-3000:]
