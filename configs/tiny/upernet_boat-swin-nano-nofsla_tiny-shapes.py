# Ablation: upernet_boat-swin-nano_tiny-shapes.py with no FSLA block (plain
# Swin of the same size), same data, schedule and seed.
_base_ = './upernet_boat-swin-nano_tiny-shapes.py'

# Its own pretrained backbone (boat-swin-nano-nofsla_stream-pretrain_
# tiny-shapes.py) is still training: until it ships, this twin starts from
# scratch, like its *-scratch config.
model = dict(backbone=dict(fsla_blocks=[[], [], [], []], init_cfg=None))
