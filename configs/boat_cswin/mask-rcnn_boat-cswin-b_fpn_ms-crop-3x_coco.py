# Mask R-CNN + FPN with a BOAT-CSWin-B backbone on COCO, 3x schedule (36
# epochs) with multi-scale crop: the BOAT-CSWin-T config with the base
# backbone. Pretrained weights: convert the published file first:
#   python tools/model_converters/boat_cswin_to_mmboat.py cswin_base.pth.tar \
#       checkpoints/boat-cswin-b_in1k_mmboat.pth
# Drop path: CSWin's detection configs were never released
# (microsoft/CSWin-Transformer#25), so each size keeps its ImageNet
# pre-training rate (T/S/B 0.2/0.4/0.5).
_base_ = './mask-rcnn_boat-cswin-t_fpn_ms-crop-3x_coco.py'

model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.5,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/boat-cswin-b_in1k_mmboat.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
