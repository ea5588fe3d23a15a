"""mmboat's configs with the libraries' own entry points, as plugin users run
them: the ``train.py`` / ``test.py`` that mmdet, mmsegmentation and
mmpretrain install under ``<site-packages>/<lib>/.mim/tools/``, directly and
through ``mim train`` / ``mim test``. Each trains a tiny config for a few
iterations on generated tiny-shapes data, validates it with the real
evaluator, then reloads the checkpoint in the library's ``test.py``, which
must report the same metrics."""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mmboat.datasets import make_tiny_datasets
from mmboat.utils.mmengine_compat import load_local_checkpoint

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / 'configs' / 'tiny'
MIM = Path(sys.executable).parent / 'mim'
# a few images per split: enough for the evaluators, quick to run
SIZES = dict(
    det=dict(train=(8, 128), val=(4, 128)),
    seg=dict(train=(8, 128), val=(4, 128)),
    cls=dict(train=(16, 64), val=(8, 64)))
METRIC_LINE = re.compile(r'(?:Epoch|Iter)\((val|test)\)\s*(?:\[[^\]]*\]\s*)+'
                         r'(.*)')


def library_tool(library, name):
    """``<site-packages>/<library>/.mim/tools/<name>`` of the installed
    library (found without importing it)."""
    origin = importlib.util.find_spec(library).origin
    tool = Path(origin).parent / '.mim' / 'tools' / name
    assert tool.is_file(), f'{library} does not ship {tool}'
    return tool


def run(cmd, cwd):
    proc = subprocess.run([str(c) for c in cmd],
                          cwd=cwd,
                          capture_output=True,
                          text=True,
                          timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    return log


def metrics(log, mode):
    """The metrics of the last ``Epoch|Iter(<mode>)`` line of a log."""
    found = [
        m.group(2) for m in METRIC_LINE.finditer(log) if m.group(1) == mode
    ]
    assert found, f'no {mode} metrics in the log:\n{log[-3000:]}'
    values = dict(re.findall(r'(\S+): (-?\d+\.\d+)', found[-1]))
    return {
        k: float(v)
        for k, v in values.items() if k not in ('data_time', 'time')
    }


def check_boat_checkpoint(path):
    """The checkpoint holds a trained BOAT backbone (FSLA weights)."""
    state = load_local_checkpoint(str(path))['state_dict']
    assert any('.fsla.' in k for k in state), sorted(state)[:20]


CASES = [
    # library, task data, tiny config, schedule, checkpoint, key metric
    ('mmdet', 'det', 'mask-rcnn_boat-swin-nano_fpn_tiny-shapes.py',
     ['train_cfg.max_epochs=1'], 'epoch_1.pth', 'coco/segm_mAP'),
    ('mmseg', 'seg', 'upernet_boat-cswin-nano_tiny-shapes.py',
     ['train_cfg.max_iters=4',
      'train_cfg.val_interval=4'], 'iter_4.pth', 'mIoU'),
    ('mmpretrain', 'cls', 'boat-swin-nano_tiny-shapes.py',
     ['train_cfg.max_epochs=1'], 'epoch_1.pth', 'accuracy/top1'),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    'library,task,config,schedule,ckpt,key', CASES, ids=[c[0] for c in CASES])
def test_library_train_and_test_tools(tmp_path, library, task, config,
                                      schedule, ckpt, key):
    # the tiny configs read data/tiny_shapes/... relative to the cwd
    make_tiny_datasets(
        str(tmp_path / 'data' / 'tiny_shapes'), tasks=(task, ), sizes=SIZES)
    config = TINY / config
    log = run([
        sys.executable,
        library_tool(library, 'train.py'), config, '--work-dir', 'work',
        '--cfg-options', *schedule
    ], tmp_path)
    val = metrics(log, 'val')
    assert key in val
    check_boat_checkpoint(tmp_path / 'work' / ckpt)

    log = run([
        sys.executable,
        library_tool(library, 'test.py'), config, f'work/{ckpt}', '--work-dir',
        'test'
    ], tmp_path)
    assert metrics(log, 'test') == val


@pytest.mark.slow
def test_mim_train_and_test_mmdet(tmp_path):
    assert MIM.is_file(), (f'{MIM} not found: install openmim '
                           '(requirements/tests.txt)')
    make_tiny_datasets(
        str(tmp_path / 'data' / 'tiny_shapes'), tasks=('det', ), sizes=SIZES)
    config = TINY / 'mask-rcnn_boat-swin-nano_fpn_tiny-shapes.py'
    log = run([
        MIM, 'train', 'mmdet', config, '--work-dir', 'work', '--cfg-options',
        'train_cfg.max_epochs=1'
    ], tmp_path)
    # mim runs mmdet's own train.py
    assert str(library_tool('mmdet', 'train.py')) in log
    val = metrics(log, 'val')
    check_boat_checkpoint(tmp_path / 'work' / 'epoch_1.pth')

    log = run([
        MIM, 'test', 'mmdet', config, '--checkpoint', 'work/epoch_1.pth',
        '--work-dir', 'test'
    ], tmp_path)
    assert str(library_tool('mmdet', 'test.py')) in log
    assert metrics(log, 'test') == val
