# Ablation: mask-rcnn_boat-cswin-nano_fpn_tiny-shapes.py with no FSLA block
# (plain CSWin of the same size), same data, schedule and seed.
_base_ = './mask-rcnn_boat-cswin-nano_fpn_tiny-shapes.py'

model = dict(backbone=dict(fsla_blocks=[[], [], [], []]))
