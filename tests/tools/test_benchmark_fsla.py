"""tools/analysis_tools/benchmark_fsla.py: one row per stage shape with the
W-MSA and FSLA times and ratios, eager and compiled, and the means; then
one row per backbone family against its baseline."""
import re
from pathlib import Path

import pytest

from tests.helpers import run_tool

TOOL = Path(__file__).resolve().parents[2] / 'tools' / 'analysis_tools' / \
    'benchmark_fsla.py'
RATIO = r'\s+(\d+\.\d+)x'


@pytest.mark.slow
def test_benchmark_fsla_prints_eager_and_compiled_ratios():
    proc = run_tool(TOOL, '--sizes', '64x96', '--stages', '2', '3', '--batch',
                    '1', '--repeats', '1', '--threads', '1', '--no-backbones')
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [
        line for line in proc.stdout.splitlines()
        if line.strip().startswith('64x96')
    ]
    # stage grids of a 64 x 96 input padded to 32: 4 x 6 and 2 x 3
    assert [r.split()[2] for r in rows] == ['4x6', '2x3']
    for row in rows:
        assert len(re.findall(RATIO, row)) == 3, row  # fwd, f+b, compiled
    assert re.search(r'forward\s+\d+\.\d+x, forward\+backward \d+\.\d+x',
                     proc.stdout)
    assert re.search(r'compiled FSLA / eager FSLA \(forward\): \d+\.\d+x',
                     proc.stdout)


def test_benchmark_fsla_eager_only():
    proc = run_tool(TOOL, '--sizes', '64x64', '--stages', '3', '--batch', '1',
                    '--repeats', '1', '--no-compile', '--no-backbones')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'compiled' not in proc.stdout
    assert 'backbones' not in proc.stdout
    assert re.search(r'64x64\s+1\s+2x2 ', proc.stdout), proc.stdout


def test_benchmark_fsla_backbones():
    """T-size backbones on small inputs: one row per family, with the
    training time, training peak memory and inference time ratios."""
    proc = run_tool(TOOL, '--sizes', '64x64', '--stages', '3', '--batch', '1',
                    '--repeats', '1', '--no-compile', '--threads', '1',
                    '--backbone-train-size', '64x64', '--backbone-batch', '1',
                    '--backbone-test-size', '64x96')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'training step 64x64 batch 1, inference 64x96' in proc.stdout
    rows = {
        line.split()[0]: line
        for line in proc.stdout.splitlines()
        if line.strip().startswith(('BOAT-Swin ', 'BOAT-CSWin '))
    }
    assert sorted(rows) == ['BOAT-CSWin', 'BOAT-Swin'], proc.stdout
    assert 'Swin (mmdet)' in rows['BOAT-Swin']
    assert 'BOAT-CSWin without FSLA' in rows['BOAT-CSWin']
    for row in rows.values():
        train, peak, test = map(float, re.findall(RATIO, row))
        assert train > 0 and test > 0, row
        # FSLA blocks keep more activations for the backward pass
        assert peak > 1.0, row
