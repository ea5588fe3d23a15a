# Ablation: boat-swin-nano_stream-pretrain_tiny-shapes.py with no FSLA block
# (plain Swin of the same size; same stream, recipe and seed): the
# backbone of the no-FSLA tiny Mask R-CNN and UperNet twins.
_base_ = './boat-swin-nano_stream-pretrain_tiny-shapes.py'

model = dict(backbone=dict(fsla_blocks=[[], [], [], []]))
