# Mask R-CNN + FPN with a BOAT-Swin-S backbone on COCO, 3x schedule (36 epochs)
# with multi-scale crop: the BOAT-Swin-T config with the small backbone.
# Pretrained weights: convert the published file first:
#   python tools/model_converters/boat_swin_to_mmboat.py small.pth \
#       checkpoints/boat-swin-s_in1k_mmboat.pth
# Drop path per size: T/S/B 0.2/0.3/0.3, more for the deeper models (for
# reference, mmdet's Swin-T and Swin-S Mask R-CNN configs both use 0.2).
_base_ = './mask-rcnn_boat-swin-t_fpn_ms-crop-3x_coco.py'

model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.3,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/boat-swin-s_in1k_mmboat.pth')))
