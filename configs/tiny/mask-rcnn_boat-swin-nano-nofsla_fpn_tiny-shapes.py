# Ablation: mask-rcnn_boat-swin-nano_fpn_tiny-shapes.py with no FSLA block
# (plain Swin of the same size), same data, schedule and seed.
_base_ = './mask-rcnn_boat-swin-nano_fpn_tiny-shapes.py'

# Its own pretrained backbone (the base's init_cfg, another file): the
# no-FSLA twin of the BOAT-Swin stream pretraining, run to the end of its
# schedule, shipped with mmboat.
model = dict(
    backbone=dict(
        fsla_blocks=[[], [], [], []],
        init_cfg=dict(
            checkpoint='mmboat://tiny_shapes/'
            'boat-swin-nano-nofsla_stream-pretrain_tiny-shapes.pth')))
