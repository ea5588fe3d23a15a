# Ablation: upernet_boat-cswin-nano_tiny-shapes.py with no FSLA block (plain
# CSWin of the same size), same data, schedule and seed.
_base_ = './upernet_boat-cswin-nano_tiny-shapes.py'

model = dict(backbone=dict(fsla_blocks=[[], [], [], []]))
