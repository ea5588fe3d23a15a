# Pretraining of the nano BOAT-Swin backbone of the tiny Mask R-CNN and
# UperNet configs (32 channels, window 7, the same FSLA blocks), as an
# ImageClassifier on an endless tiny-shapes stream (TinyShapesStream: 64 x 64
# single shapes, a new image at every step, never one twice); validation on
# the fixed val folder of data/tiny_shapes/imagenet. The shipped checkpoint
# (mmboat/checkpoints/tiny_shapes/) is its backbone. Data for validation:
#   python tools/misc/make_tiny_datasets.py       # writes data/tiny_shapes
_base_ = './boat-swin-nano_tiny-shapes.py'

# ----------------------------------------------------------------- model
# The backbone is the one of mask-rcnn_boat-swin-nano_fpn_tiny-shapes.py,
# with all four outputs (and their norms), so that every backbone weight
# loads there. Two training-only losses shorten the plateau of learning
# shape from scratch (AuxLossImageClassifier; neither is part of the
# shipped backbone):
# - dense: a 1 x 1 conv per output predicts the share of background and of
#   each shape under every token (the stream's label maps);
# - distill: a small ResNet-18 teacher, trained first on the same stream
#   (resnet18-nano_stream-pretrain_tiny-shapes.py, 96% top-1 in minutes),
#   distils its features (per output) and its class probabilities (as
#   DeiT's soft distillation).
# AuxLossImageClassifier is registered by its module, which `import mmboat`
# does not import (it imports mmpretrain's models)
custom_imports = dict(
    imports=['mmboat', 'mmboat.models.classifiers'],
    allow_failed_imports=False)
teacher = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet',
        depth=18,
        stem_channels=16,
        base_channels=16,
        out_indices=(0, 1, 2, 3)),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=4,
        in_channels=128,
        loss=dict(type='CrossEntropyLoss')))
channels = [32, 64, 128, 256]
model = dict(
    type='AuxLossImageClassifier',
    backbone=dict(
        arch=dict(embed_dims=32),
        # the stream never shows an image twice: nothing to regularise
        drop_path_rate=0.,
        out_indices=(0, 1, 2, 3)),
    head=dict(in_channels=256),
    dense=dict(in_channels=channels),
    distill=dict(
        model=teacher,
        checkpoint='mmboat://tiny_shapes/'
        'resnet18-nano_stream-pretrain_tiny-shapes.pth',
        in_channels=channels,
        teacher_channels=[16, 32, 64, 128]))

# ----------------------------------------------------------------- data
images_per_epoch = 8000  # 250 steps of 32: one checkpoint every few minutes
train_pipeline = [
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs', algorithm_keys=('gt_seg_map', )),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=False,
    sampler=dict(type='EpochStreamSampler', shuffle=True),
    dataset=dict(
        _delete_=True,
        type='TinyShapesStream',
        images_per_epoch=images_per_epoch,
        side=64,
        mode='single',
        seed=0,
        with_seg=True,
        pipeline=train_pipeline))

# ----------------------------------------------------------------- schedule
max_epochs = 80  # 20,000 steps
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=True,
        begin=1,
        end=max_epochs,
        convert_to_iter_based=True)
]
optim_wrapper = dict(optimizer=dict(lr=1e-3), clip_grad=dict(max_norm=1.0))
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(
        interval=1,
        max_keep_ckpts=2,
        save_best='accuracy/top1',
        rule='greater'))
