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
        # fwd, FLOPs, clustering share, f+b, compiled
        assert len(re.findall(RATIO, row)) == 5, row
    assert re.search(
        r'forward\s+\d+\.\d+x, forward\+backward \d+\.\d+x; '
        r'forward FLOPs \d+\.\d+x', proc.stdout)
    assert re.search(r'compiled FSLA / eager FSLA \(forward\): \d+\.\d+x',
                     proc.stdout)


def test_benchmark_fsla_eager_only():
    proc = run_tool(TOOL, '--sizes', '64x64', '224x224', '--stages', '3',
                    '--batch', '1', '--repeats', '1', '--no-compile',
                    '--no-backbones')
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the first line names the clustering op's CPU kernel; no compiled
    # column or backbone section after it
    header, table = proc.stdout.split('\n', 1)
    assert 'cluster_order (CPU)=' in header, header
    assert 'compiled' not in table
    assert 'backbones' not in table
    assert re.search(r'64x64\s+1\s+2x2 ', proc.stdout), proc.stdout
    # a 7 x 7 grid is one cluster (no clustering products) and one window:
    # the same projections and 49-key attention, plus LePE's depthwise
    # 3 x 3 convolution (9 C of 4 C**2 + 2 * 49 C multiply-adds per token)
    row = re.search(r'224x224\s+1\s+7x7 .*', proc.stdout).group()
    fwd, flops, clustering = map(float, re.findall(RATIO, row)[:3])
    assert flops == 1.003, row  # 1.00284
    assert fwd > 0 and clustering > 0, row


@pytest.mark.slow
def test_benchmark_fsla_backbones():
    """T-size backbones on small inputs: one row per family, with the
    training time, training peak memory and inference time ratios, and the
    FLOP ratios; then the compiled inference (dynamo with the eager backend
    here: the same graphs, compiled in seconds)."""
    proc = run_tool(TOOL, '--sizes', '64x64', '--stages', '3', '--batch', '1',
                    '--repeats', '1', '--compile-backend', 'eager',
                    '--threads', '1', '--backbone-train-size', '64x64',
                    '--backbone-batch', '1', '--backbone-test-size', '64x96')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'training step 64x64 batch 1, inference 64x96' in proc.stdout
    eager, compiled = proc.stdout.split('compiled backbones')
    assert 'backend eager, static shapes): inference 64x96' in compiled
    rows = {
        line.split()[0]: line
        for line in compiled.splitlines()
        if line.strip().startswith(('BOAT-Swin ', 'BOAT-CSWin '))
    }
    assert sorted(rows) == ['BOAT-CSWin', 'BOAT-Swin'], compiled
    for row in rows.values():
        # BOAT / baseline compiled, BOAT and baseline compiled / eager
        assert len(re.findall(RATIO, row)) == 3, row
    rows = {
        line.split()[0]: line
        for line in eager.splitlines()
        if line.strip().startswith(('BOAT-Swin ', 'BOAT-CSWin '))
    }
    assert sorted(rows) == ['BOAT-CSWin', 'BOAT-Swin'], proc.stdout
    assert 'Swin (mmdet)' in rows['BOAT-Swin']
    assert 'BOAT-CSWin without FSLA' in rows['BOAT-CSWin']
    for row in rows.values():
        train, peak, test, flops_train, flops_test = map(
            float, re.findall(RATIO, row))
        assert train > 0 and test > 0, row
        # FSLA blocks keep more activations for the backward pass
        assert peak > 1.0, row
        # and add their products to those of the baseline
        assert flops_train > 1.0 and flops_test > 1.0, row
