# ImageClassifier with a nano BOAT-Swin (16 channels) on the tiny-shapes
# ImageNet-style class-folder set (4 classes, 64 x 64, 2400 training
# images): the BOAT-Swin-T ImageNet config with a smaller backbone and
# images and a CPU-sized schedule. Data:
#   python tools/misc/make_tiny_datasets.py       # writes data/tiny_shapes
_base_ = '../boat_swin/boat-swin-t_16xb64_in1k.py'

# ----------------------------------------------------------------- model
num_classes = 4
model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=16,
            depths=(2, 2, 2, 2),
            num_heads=(1, 2, 4, 8)),
        drop_path_rate=0.1),
    head=dict(in_channels=128, num_classes=num_classes),
    train_cfg=None)
data_preprocessor = dict(num_classes=num_classes)

# ----------------------------------------------------------------- data
dataset_type = 'CustomDataset'
data_root = 'data/tiny_shapes/imagenet/'
metainfo = dict(classes=('circle', 'rectangle', 'star', 'triangle'))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        data_prefix='train',
        metainfo=metainfo,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=1,
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        data_prefix='val',
        metainfo=metainfo,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

# ----------------------------------------------------------------- schedule
max_epochs = 40
train_cfg = dict(
    _delete_=True,
    type='ExactResumeEpochBasedTrainLoop',
    max_epochs=max_epochs,
    val_interval=max_epochs)
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
        end=max_epochs)
]
optim_wrapper = dict(optimizer=dict(lr=3e-4))
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
# no EMA: its ImageNet momentum averages over far more steps than this run;
# a run killed and resumed (--resume) ends as if uninterrupted
custom_hooks = [dict(type='ExactResumeHook')]

# the same seed for every run of this config (and its no-FSLA twin)
randomness = dict(seed=0)
