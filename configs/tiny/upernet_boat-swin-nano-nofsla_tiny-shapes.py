# Ablation: upernet_boat-swin-nano_tiny-shapes.py with no FSLA block (plain
# Swin of the same size), same data, schedule and seed.
_base_ = './upernet_boat-swin-nano_tiny-shapes.py'

model = dict(backbone=dict(fsla_blocks=[[], [], [], []]))
