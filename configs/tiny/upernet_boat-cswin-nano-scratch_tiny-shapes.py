# From scratch: upernet_boat-cswin-nano_tiny-shapes.py with a randomly
# initialised backbone (no pretrained weights), same data, schedule and seed:
# the comparison that shows what the pretrained backbone buys.
_base_ = './upernet_boat-cswin-nano_tiny-shapes.py'

model = dict(backbone=dict(init_cfg=None))
