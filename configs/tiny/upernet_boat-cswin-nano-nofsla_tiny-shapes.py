# Ablation: upernet_boat-cswin-nano_tiny-shapes.py with no FSLA block (plain
# CSWin of the same size), same data, schedule and seed.
_base_ = './upernet_boat-cswin-nano_tiny-shapes.py'

# Its own pretrained backbone (boat-cswin-nano-nofsla_stream-pretrain_
# tiny-shapes.py) is still training: until it ships, this twin starts from
# scratch, like its *-scratch config.
model = dict(backbone=dict(fsla_blocks=[[], [], [], []], init_cfg=None))
