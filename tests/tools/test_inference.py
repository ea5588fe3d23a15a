"""Inference with mmdet's DetInferencer and mmseg's MMSegInferencer on the
BOAT configs: the config's test pipeline on a real image file, predictions
and visualisations written to disk."""
import json

import numpy as np
import pytest
from PIL import Image

from tests.helpers import REPO_ROOT


@pytest.fixture
def image(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    path = tmp_path / 'demo.jpg'
    Image.fromarray(img).save(path)
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize('family', ['boat_swin', 'boat_cswin'])
def test_det_inferencer(family, image, tmp_path):
    from mmdet.apis import DetInferencer

    import mmboat  # noqa: F401
    cfg = REPO_ROOT / 'configs' / family / \
        f'mask-rcnn_{family.replace("_", "-")}-t_fpn_1x_coco.py'
    inferencer = DetInferencer(model=str(cfg), weights=None, device='cpu')
    out = tmp_path / 'det'
    result = inferencer(image, out_dir=str(out), no_save_pred=False)
    pred = result['predictions'][0]
    assert len(pred['bboxes']) == len(pred['scores']) == len(pred['labels'])
    assert (out / 'vis' / 'demo.jpg').is_file()
    saved = json.loads((out / 'preds' / 'demo.json').read_text())
    assert set(saved) >= {'bboxes', 'scores', 'labels'}


@pytest.mark.slow
def test_seg_inferencer(image, tmp_path):
    from mmseg.apis import MMSegInferencer

    import mmboat  # noqa: F401
    cfg = REPO_ROOT / 'configs' / 'boat_swin' / \
        'upernet_boat-swin-t_8xb2-160k_ade20k-512x512.py'
    inferencer = MMSegInferencer(model=str(cfg), weights=None, device='cpu')
    out = tmp_path / 'seg'
    result = inferencer(image, out_dir=str(out), return_datasamples=False)
    assert result['predictions'].shape == (240, 320)
    assert result['predictions'].max() < 150
    assert (out / 'vis' / 'demo.jpg').is_file()
