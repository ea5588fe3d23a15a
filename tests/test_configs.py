"""Every config under configs/ loads (with its mmdet / mmseg / mmpretrain
base), builds its model through the downstream registry and runs it."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

CONFIGS = sorted((Path(__file__).resolve().parents[1] / 'configs').glob('*/*.py'))


def load(path):
    cfg = Config.fromfile(str(path))
    assert cfg.custom_imports['imports'] == ['mmboat']
    __import__('mmboat')
    init_default_scope(cfg.default_scope)
    from mmengine.registry import MODELS
    return cfg, MODELS.build(cfg.model).eval()


def test_configs_are_found():
    assert len(CONFIGS) >= 6


@pytest.mark.parametrize('path', [p for p in CONFIGS if 'mask-rcnn' in p.name],
                         ids=lambda p: p.name)
def test_detection_config(path):
    from mmdet.structures import DetDataSample
    cfg, model = load(path)
    assert cfg.default_scope == 'mmdet'
    h, w = 96, 160
    sample = DetDataSample(metainfo=dict(
        img_shape=(h, w), ori_shape=(h, w), scale_factor=(1., 1.),
        pad_shape=(h, w), batch_input_shape=(h, w)))
    data = dict(inputs=[torch.randint(0, 255, (3, h, w), dtype=torch.uint8)],
                data_samples=[sample])
    with torch.no_grad():
        pred = model.test_step(data)[0].pred_instances
    assert pred.masks.shape[1:] == (h, w)


@pytest.mark.parametrize('path', [p for p in CONFIGS if 'upernet' in p.name],
                         ids=lambda p: p.name)
def test_segmentation_config(path):
    cfg, model = load(path)
    assert cfg.default_scope == 'mmseg'
    with torch.no_grad():
        out = model(torch.randn(1, 3, 96, 128), mode='tensor')
    assert out.shape == (1, 150, 24, 32)


@pytest.mark.parametrize('path', [p for p in CONFIGS if 'in1k' in p.name],
                         ids=lambda p: p.name)
def test_classification_config(path):
    cfg, model = load(path)
    assert cfg.default_scope == 'mmpretrain'
    assert type(model).__name__ == 'ImageClassifier'
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224), mode='tensor')
    assert out.shape == (1, 1000)
