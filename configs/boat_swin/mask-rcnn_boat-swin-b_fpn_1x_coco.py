# Mask R-CNN + FPN with a BOAT-Swin-B backbone on COCO, 1x schedule (12
# epochs): the BOAT-Swin-T config with the base backbone. Pretrained weights:
# convert the published file first:
#   python tools/model_converters/boat_swin_to_mmboat.py base.pth \
#       checkpoints/boat-swin-b_in1k_mmboat.pth
# Drop path per size: T/S/B 0.2/0.3/0.3, more for the deeper models (for
# reference, mmdet's Swin-T and Swin-S Mask R-CNN configs both use 0.2).
_base_ = './mask-rcnn_boat-swin-t_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.3,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/boat-swin-b_in1k_mmboat.pth')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
