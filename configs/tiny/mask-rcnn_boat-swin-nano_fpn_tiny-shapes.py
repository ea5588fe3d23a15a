# Mask R-CNN with a nano BOAT-Swin (32 channels, 3.6M parameters in all) on
# the tiny-shapes COCO set: the BOAT-Swin-T config with smaller backbone,
# heads and images and a CPU-sized schedule, fine-tuned from a nano BOAT-Swin
# pretrained on the tiny-shapes stream (the recipe of the zoo configs, which
# start from ImageNet weights). Data:
#   python tools/misc/make_tiny_datasets.py       # writes data/tiny_shapes
_base_ = '../boat_swin/mask-rcnn_boat-swin-t_fpn_1x_coco.py'

# ----------------------------------------------------------------- model
channels = 64
model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=32,
            depths=(2, 2, 2, 2),
            num_heads=(1, 2, 4, 8)),
        drop_path_rate=0.1,
        # fine-tuned from the nano BOAT-Swin pretrained on the tiny-shapes
        # stream (shipped in the package; its manifest says how it was made)
        init_cfg=dict(
            type='Pretrained',
            checkpoint='mmboat://tiny_shapes/'
            'boat-swin-nano_stream-pretrain_tiny-shapes.pth',
            prefix='backbone.')),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=channels),
    rpn_head=dict(in_channels=channels, feat_channels=channels),
    roi_head=dict(
        # torchvision's RoIAlign: the same computation as mmcv's, 2-7x
        # faster on the CPU
        bbox_roi_extractor=dict(
            out_channels=channels, roi_layer=dict(use_torchvision=True)),
        bbox_head=dict(
            in_channels=channels, fc_out_channels=256, num_classes=4),
        mask_roi_extractor=dict(
            out_channels=channels, roi_layer=dict(use_torchvision=True)),
        mask_head=dict(
            in_channels=channels, conv_out_channels=channels, num_classes=4)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=300)))

# ----------------------------------------------------------------- data
data_root = 'data/tiny_shapes/coco/'
metainfo = dict(
    classes=('circle', 'rectangle', 'star', 'triangle'),
    palette=[(220, 20, 60), (0, 130, 230), (250, 170, 30), (20, 180, 80)])
img_scale = (128, 128)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='images/train/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=1,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='images/val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

# ----------------------------------------------------------------- schedule
# fine-tuning: 6 epochs, the heads (random at the start) 5 times faster than
# the pretrained backbone. Measured from the shipped backbone: bbox / segm
# mAP 0.599 / 0.606; 0.533 / 0.497 with one learning rate for all
# (docs/tiny_shapes_pretraining.md)
max_epochs = 6
train_cfg = dict(
    type='ExactResumeEpochBasedTrainLoop',
    max_epochs=max_epochs,
    val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[5],
        gamma=0.1)
]
optim_wrapper = dict(
    optimizer=dict(lr=3e-4),
    paramwise_cfg=dict(
        custom_keys={
            'neck': dict(lr_mult=5.),
            'rpn_head': dict(lr_mult=5.),
            'roi_head': dict(lr_mult=5.)
        }))
default_hooks = dict(
    logger=dict(interval=16),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))

# a run killed and resumed (--resume) skips the batches it trained and
# continues from the saved random states (exact up to the augmentations of
# the persistent data workers after epoch 1: mmboat.engine.ExactResumeHook
# with the loop ExactResumeEpochBasedTrainLoop above)
custom_hooks = [dict(type='ExactResumeHook')]

# the same seed for every run of this config (and its no-FSLA twin)
randomness = dict(seed=0)
