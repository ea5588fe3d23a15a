"""tools/quick_start.py: data, training, evaluation and a picture in one
command, here with a one-epoch schedule on a small generated set."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmboat.datasets import make_tiny_datasets

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_start_detection(tmp_path):
    data = tmp_path / 'data'
    make_tiny_datasets(
        data,
        tasks=['det'],
        sizes=dict(det=dict(train=(8, 128), val=(4, 128))))
    work = tmp_path / 'work'
    script = REPO / 'tools' / 'quick_start.py'
    command = [
        sys.executable, script, 'det', '--data-root', data, '--work-dir', work,
        '--cfg-options', 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1'
    ]
    proc = subprocess.run(
        list(map(str, command)),
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    run_dir = work / 'mask-rcnn_boat-swin-nano_fpn_tiny-shapes'
    metrics = json.loads((run_dir / 'metrics.json').read_text())
    assert 0 <= metrics['coco/bbox_mAP'] <= 1
    assert 0 <= metrics['coco/segm_mAP'] <= 1
    picture = run_dir / 'vis' / 'val_000000.png'
    assert f'picture: {picture} (left: ground truth, right: predictions)' \
        in out
    assert f'metrics: {run_dir / "metrics.json"}' in out
    drawn = np.asarray(Image.open(picture).convert('RGB'))
    image = np.asarray(Image.open(data / 'coco/images/val/000000.jpg'))
    # ground truth and predictions side by side, 4 times enlarged
    assert drawn.shape == (4 * image.shape[0], 8 * image.shape[1], 3)
    # the data was not rewritten: it was there
    assert 'writing the tiny-shapes' not in out
