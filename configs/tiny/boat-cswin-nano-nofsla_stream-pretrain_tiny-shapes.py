# Ablation: boat-cswin-nano_stream-pretrain_tiny-shapes.py with no FSLA block
# (plain CSWin of the same size; same stream, recipe and seed): the
# backbone of the no-FSLA tiny Mask R-CNN and UperNet twins.
_base_ = './boat-cswin-nano_stream-pretrain_tiny-shapes.py'

model = dict(backbone=dict(fsla_blocks=[[], [], [], []]))
