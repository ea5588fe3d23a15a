# From scratch: mask-rcnn_boat-swin-nano-nofsla_fpn_tiny-shapes.py with a
# randomly initialised backbone (no pretrained weights), same data, schedule
# and seed: the comparison that shows what the pretrained backbone buys.
_base_ = './mask-rcnn_boat-swin-nano-nofsla_fpn_tiny-shapes.py'

model = dict(backbone=dict(init_cfg=None))
