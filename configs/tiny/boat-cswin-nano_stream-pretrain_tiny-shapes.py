# Pretraining of the nano BOAT-CSWin backbone of the tiny Mask R-CNN and
# UperNet configs: the BOAT-Swin stream pretraining config (data, dense
# auxiliary loss, schedule) with that backbone.
_base_ = './boat-swin-nano_stream-pretrain_tiny-shapes.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='BOATCSWinTransformer',
        arch=dict(
            embed_dims=32,
            depths=(1, 2, 2, 1),
            num_heads=(2, 4, 8, 16),
            split_sizes=(1, 2, 7, 7)),
        drop_path_rate=0.,
        out_indices=(0, 1, 2, 3)))
