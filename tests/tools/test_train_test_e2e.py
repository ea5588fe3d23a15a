"""End to end through tools/train.py and tools/test.py: a small BOAT-Swin
ImageClassifier on an ImageNet-style class-folder tree, trained, resumed and
evaluated with mmpretrain's runner on the CPU."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]

CONFIG = '''
_base_ = '{repo}/configs/boat_swin/boat-swin-t_16xb64_in1k.py'
data_root = '{data}'
model = dict(
    backbone=dict(arch=dict(_delete_=True, embed_dims=16, depths=(2, 2, 2, 2),
                            num_heads=(1, 2, 4, 8)),
                  pretrain_img_size=64, drop_path_rate=0.),
    head=dict(num_classes=2, in_channels=128),
    train_cfg=None)
data_preprocessor = dict(num_classes=2)
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64)),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root,
                 data_prefix='train', pipeline=pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root,
                 data_prefix='val', pipeline=pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator
train_cfg = dict(by_epoch=True, max_epochs={epochs}, val_interval=1)
param_scheduler = [dict(type='ConstantLR', factor=1.0)]
default_hooks = dict(logger=dict(interval=1))
'''


def make_tree(root):
    rng = np.random.default_rng(0)
    for split, n in (('train', 8), ('val', 4)):
        for label, cls in enumerate(('cat', 'dog')):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 80, (64, 64, 3)) + 120 * label
                Image.fromarray(img.astype(np.uint8)).save(folder / f'{i}.png')


def run(*args):
    proc = subprocess.run([sys.executable, *args],
                          cwd=REPO,
                          text=True,
                          capture_output=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_train_resume_and_test(tmp_path):
    make_tree(tmp_path / 'data')
    for epochs in (1, 2):
        (tmp_path / f'cfg{epochs}.py').write_text(
            CONFIG.format(repo=REPO, data=tmp_path / 'data', epochs=epochs))
    work = tmp_path / 'work'
    # --resume with nothing to resume says so, and trains from scratch
    log = run('tools/train.py', str(tmp_path / 'cfg1.py'), '--work-dir',
              str(work), '--resume')
    assert f'--resume: no checkpoint to resume in {work}' in log
    assert (work / 'epoch_1.pth').is_file()
    assert 'accuracy/top1' in log

    # resume the run (MMEngine checkpoint with HistoryBuffer, torch >= 2.6)
    log = run('tools/train.py', str(tmp_path / 'cfg2.py'), '--work-dir',
              str(work), '--resume')
    assert 'resumed epoch: 1' in log
    assert (work / 'epoch_2.pth').is_file()

    log = run('tools/test.py', str(tmp_path / 'cfg2.py'),
              str(work / 'epoch_2.pth'), '--work-dir', str(tmp_path / 'test'))
    assert 'accuracy/top1' in log
