# Mask R-CNN + FPN with a BOAT-CSWin-S backbone on COCO, 1x schedule (12
# epochs): the BOAT-CSWin-T config with the small backbone. Pretrained weights:
# convert the published file first:
#   python tools/model_converters/boat_cswin_to_mmboat.py cswin_small.pth.tar \
#       checkpoints/boat-cswin-s_in1k_mmboat.pth
# Drop path: CSWin's detection configs were never released
# (microsoft/CSWin-Transformer#25), so each size keeps its ImageNet
# pre-training rate (T/S/B 0.2/0.4/0.5).
_base_ = './mask-rcnn_boat-cswin-t_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.4,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/boat-cswin-s_in1k_mmboat.pth')))
