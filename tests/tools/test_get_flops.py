"""tools/analysis_tools/get_flops.py, and mmdet's own get_flops.py, on the
tiny configs: FSLA is traced and counted, nothing of mmboat is left
unsupported."""
import contextlib
import io
import re
import shlex
import sys
from pathlib import Path

import pytest

from mmboat.datasets import make_tiny_datasets
from tests.helpers import call_tool_main, doc_block, run_tool
from tests.tools.test_library_tools import SIZES, library_tool, run

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools' / 'analysis_tools' / 'get_flops.py'
TINY = REPO / 'configs' / 'tiny'
FLOPS = re.compile(r'Flops: \S+ \((\d+) multiply-adds\)\nParams: \S+ '
                   r'\((\d+)\)')
# what mmboat adds to a traced model: none may be reported unsupported
MMBOAT_OPS = ('mmboat::cluster_order', 'scaled_dot_product_attention',
              'PythonOp._ClusterQKV', 'PythonOp._GatherRowsFunction')


def count(config, *args):
    """(multiply-adds, parameters) printed by the tool's ``main`` (run in
    this process; test_cli_convention.py runs it as a command)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert call_tool_main(TOOL, TINY / config, *args) == 0
    found = FLOPS.search(out.getvalue())
    assert found, out.getvalue()
    return int(found[1]), int(found[2])


@pytest.mark.parametrize('config', [
    'mask-rcnn_boat-swin-nano_fpn_tiny-shapes.py',
    'upernet_boat-cswin-nano_tiny-shapes.py',
    'boat-swin-nano_tiny-shapes.py',
])
def test_get_flops_counts_fsla_of_every_task(config):
    flops, params = count(config, '--shape', '96', '128')
    no_fsla, no_fsla_params = count(
        config, '--shape', '96', '128', '--cfg-options',
        'model.backbone.fsla_blocks=[[],[],[],[]]')
    # FSLA blocks add parameters and counted work
    assert params > no_fsla_params and flops > no_fsla


def test_get_flops_refuses_a_bad_shape():
    proc = run_tool(TOOL, TINY / 'boat-swin-nano_tiny-shapes.py', '--shape',
                    '1', '2', '3')
    assert proc.returncode != 0
    assert '--shape takes H W' in proc.stderr


@pytest.mark.slow
def test_mmdet_get_flops_counts_a_boat_detector(tmp_path):
    # the command of docs/analysis_tools.md (run here, not by test_docs.py),
    # from a folder with the tiny-shapes data: the tool reads the config's
    # val images (cwd-relative data)
    command = shlex.split(
        doc_block('docs/analysis_tools.md',
                  'mmdet/.mim/tools/analysis_tools/get_flops.py').replace(
                      '\\\n', ''))
    tool = '.venv/lib/python3.11/site-packages/mmdet/.mim/tools/' \
        'analysis_tools/get_flops.py'
    assert command[:2] == ['.venv/bin/python', tool], command
    config, *options = command[2:]
    assert config == 'configs/tiny/mask-rcnn_boat-swin-nano_fpn_tiny-shapes.py'
    make_tiny_datasets(
        str(tmp_path / 'data' / 'tiny_shapes'), tasks=('det', ), sizes=SIZES)
    log = run([
        sys.executable,
        library_tool('mmdet', 'analysis_tools/get_flops.py'), REPO / config,
        *options
    ], tmp_path)
    # what the docs say it prints, as tools/analysis_tools/get_flops.py
    assert 'Flops: 3.796G' in log, log[-3000:]
    unsupported = re.findall(r'Unsupported operator (\S+)', log)
    assert not [op for op in unsupported if op.endswith(MMBOAT_OPS)], \
        unsupported
