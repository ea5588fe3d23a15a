# The CNN teacher of the nano BOAT stream pretraining configs: a ResNet-18
# with 16 base channels (0.7M parameters, BatchNorm) trained on the same
# stream, which learns the tiny-shapes classes in a few thousand steps
# (6,000 steps: about 10 minutes on one core). Its
# weights are shipped (mmboat/checkpoints/tiny_shapes/) because the students'
# distillation loss reads them.
_base_ = './boat-swin-nano_stream-pretrain_tiny-shapes.py'

model = dict(
    _delete_=True,
    type='ImageClassifier',
    backbone={{_base_.teacher.backbone}},
    neck={{_base_.teacher.neck}},
    head={{_base_.teacher.head}})

max_epochs = 24  # 6,000 steps
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True)
]
