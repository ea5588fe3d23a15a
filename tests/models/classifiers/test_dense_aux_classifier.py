"""DenseAuxImageClassifier: the ImageClassifier's loss plus a dense loss
from the label maps, which trains; prediction is the ImageClassifier's."""
import numpy as np
import pytest
import torch
from mmengine.registry import MODELS
from mmpretrain.structures import DataSample

import mmboat  # noqa: F401
from mmboat.models.classifiers import dense_targets

ARCH = dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))


def build(aux_weight=1.0):
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='DenseAuxImageClassifier',
            backbone=dict(
                type='BOATSwinTransformer',
                arch=ARCH,
                window_size=4,
                drop_path_rate=0.,
                out_indices=(0, 1, 2, 3)),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead',
                num_classes=4,
                in_channels=128,
                loss=dict(type='CrossEntropyLoss')),
            aux_in_channels=[16, 32, 64, 128],
            aux_weight=aux_weight))
    model.init_weights()
    return model


def samples(labels, seg_maps):
    out = []
    for y, s in zip(labels, seg_maps):
        sample = DataSample().set_gt_label(int(y))
        sample.set_field(s, 'gt_seg_map')
        out.append(sample)
    return out


def test_dense_targets_are_class_shares_per_cell():
    seg = torch.zeros(1, 4, 4, dtype=torch.long)
    seg[0, :2, :2] = 3  # the top-left cell of a 2 x 2 grid is all class 3
    seg[0, 2:, 2:3] = 1  # half of the bottom-right cell is class 1
    t = dense_targets(seg, 5, (2, 2))
    assert t.shape == (1, 5, 2, 2)
    assert torch.allclose(t.sum(1), torch.ones(1, 2, 2))
    assert t[0, 3, 0, 0] == 1 and t[0, 0, 0, 1] == 1
    assert t[0, 1, 1, 1] == 0.5 and t[0, 0, 1, 1] == 0.5


def test_loss_adds_the_weighted_dense_loss_and_predict_is_unchanged():
    x = torch.randn(2, 3, 32, 32)
    seg = [np.zeros((32, 32), np.uint8), np.full((32, 32), 2, np.uint8)]
    data = samples([0, 1], seg)
    model = build(aux_weight=1.0)
    losses = model.loss(x, data)
    assert set(losses) == {'loss', 'loss_dense'}
    # by hand: soft cross-entropy of each output's 1 x 1 conv, averaged
    feats = model.backbone(x)
    target_maps = torch.stack([torch.as_tensor(s) for s in seg])
    expected = sum(-(dense_targets(target_maps, 5, f.shape[-2:]) *
                     torch.log_softmax(h(f), 1)).sum(1).mean()
                   for f, h in zip(feats, model.aux_heads)) / 4
    assert torch.allclose(losses['loss_dense'], expected)
    # the weight scales it; the classification loss is the head's own
    half = build(aux_weight=0.5).loss(x, data)
    assert torch.allclose(half['loss_dense'], expected / 2)
    assert torch.allclose(half['loss'], losses['loss'])
    # prediction runs no auxiliary head
    model.eval()
    scores = model.predict(x)[0].pred_score
    assert scores.shape == (4, )
    plain_feats = model.neck(model.backbone(x))
    assert torch.allclose(
        model.predict(x)[1].pred_score,
        model.head.predict(plain_feats)[1].pred_score)


def test_dense_loss_trains_the_backbone():
    model = build()
    x = torch.randn(4, 3, 32, 32)
    seg = [np.zeros((32, 32), np.uint8)] * 2 + [np.ones(
        (32, 32), np.uint8)] * 2
    data = samples([0, 0, 1, 1], seg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = model.loss(x, data)['loss_dense'].item()
    for _ in range(20):
        loss = model.loss(x, data)
        opt.zero_grad()
        (loss['loss'] + loss['loss_dense']).backward()
        opt.step()
    assert loss['loss_dense'].item() < 0.5 * first


def test_outputs_and_aux_channels_must_agree():
    model = build()
    model.aux_heads = model.aux_heads[:2]
    with pytest.raises(ValueError, match='aux_in_channels has 2'):
        model.loss(
            torch.randn(1, 3, 32, 32),
            samples([0], [np.zeros((32, 32), np.uint8)]))
