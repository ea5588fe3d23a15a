"""AuxLossImageClassifier: the ImageClassifier's loss plus a dense loss
from the label maps and distillation from a frozen teacher, which train;
prediction is the ImageClassifier's."""
import numpy as np
import pytest
import torch
from mmengine.registry import MODELS, DefaultScope
from mmpretrain.registry import MODELS as PRETRAIN_MODELS
from mmpretrain.structures import DataSample

import mmboat  # noqa: F401
from mmboat.models.classifiers import dense_targets, feature_distance

ARCH = dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))

TEACHER = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet',
        depth=18,
        stem_channels=8,
        base_channels=8,
        out_indices=(0, 1, 2, 3)),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=4,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss')))


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    """mmpretrain models build their parts (ClsDataPreprocessor...) in
    the current scope: mmpretrain's, as in an mmpretrain config, whatever
    scope an earlier test's runner left current."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def build(aux_weight=1.0, distill=None):
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='AuxLossImageClassifier',
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
            dense=dict(in_channels=[16, 32, 64, 128], weight=aux_weight),
            distill=distill))
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
    with pytest.raises(ValueError, match='dense in_channels lists 2'):
        model.loss(
            torch.randn(1, 3, 32, 32),
            samples([0], [np.zeros((32, 32), np.uint8)]))


def test_distillation_from_a_frozen_teacher(tmp_path):
    """The teacher's weights come from its checkpoint and stay frozen, in
    eval mode; the feature and logit losses are the documented ones and
    train the student toward the teacher."""
    torch.manual_seed(1)
    teacher = PRETRAIN_MODELS.build(TEACHER)
    teacher.init_weights()
    # BatchNorm statistics that are not the defaults: eval mode matters
    for m in teacher.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    torch.save(dict(state_dict=teacher.state_dict()), tmp_path / 't.pth')
    distill = dict(
        model=TEACHER,
        checkpoint=str(tmp_path / 't.pth'),
        in_channels=[16, 32, 64, 128],
        teacher_channels=[8, 16, 32, 64],
        feat_weight=2.0,
        logit_weight=0.5)
    model = build(distill=distill).train()
    assert not model.teacher.training
    for k, v in teacher.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[k], v), k
    assert not any(p.requires_grad for p in model.teacher.parameters())

    x = torch.randn(2, 3, 32, 32)
    data = samples([0, 1], [np.zeros((32, 32), np.uint8)] * 2)
    losses = model.loss(x, data)
    teacher.eval()
    with torch.no_grad():
        t_feats = teacher.backbone(x)
        t_logits = teacher.head(teacher.neck(t_feats))
    feats = model.backbone(x)
    expected_feat = sum(
        feature_distance(a(f), t)
        for f, t, a in zip(feats, t_feats, model.distill_adapters)) / 4
    assert torch.allclose(losses['loss_distill_feat'], 2.0 * expected_feat)
    p_t = torch.softmax(t_logits, 1)
    log_p_s = torch.log_softmax(model.head(model.neck(feats)), 1)
    kl = (p_t * (p_t.log() - log_p_s)).sum(1).mean()
    assert torch.allclose(losses['loss_distill_logit'], 0.5 * kl, atol=1e-6)

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                            lr=3e-3)
    first = losses['loss_distill_feat'].item()
    for _ in range(20):
        losses = model.loss(x, data)
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    assert losses['loss_distill_feat'].item() < 0.5 * first
    for k, v in teacher.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[k], v), k


def test_feature_distance_is_zero_for_parallel_features():
    f = torch.randn(2, 8, 3, 3)
    assert feature_distance(3 * f, f).abs() < 1e-6
    assert torch.allclose(feature_distance(-f, f), torch.tensor(4.))
