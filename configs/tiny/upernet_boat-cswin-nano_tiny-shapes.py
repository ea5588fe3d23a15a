# UperNet with a nano BOAT-CSWin (32 channels) on the tiny-shapes ADE20K-style
# set: the BOAT-Swin nano config (data, heads, schedule) with the backbone of
# BOAT-CSWin-T, smaller, fine-tuned from its stream-pretrained backbone.
_base_ = './upernet_boat-swin-nano_tiny-shapes.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='BOATCSWinTransformer',
        arch=dict(
            embed_dims=32,
            depths=(1, 2, 2, 1),
            num_heads=(2, 4, 8, 16),
            split_sizes=(1, 2, 7, 7)),
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        # fine-tuned from the nano BOAT-CSWin pretrained on the tiny-shapes
        # stream (shipped in the package; its manifest says how it was made)
        init_cfg=dict(
            type='Pretrained',
            checkpoint='mmboat://tiny_shapes/'
            'boat-cswin-nano_stream-pretrain_tiny-shapes.pth',
            prefix='backbone.')))
