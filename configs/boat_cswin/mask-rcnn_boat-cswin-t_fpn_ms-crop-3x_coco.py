# Mask R-CNN + FPN with a BOAT-CSWin-T backbone on COCO, 3x schedule (36
# epochs) with multi-scale crop: pipeline, schedule and optimiser of mmdet's
# Swin-T config (AdamW lr 1e-4, weight decay 0.05, none on norms).
# Pretrained weights: convert the published file first:
#   python tools/model_converters/boat_cswin_to_mmboat.py cswin_tiny.pth.tar \
#       checkpoints/boat-cswin-t_in1k_mmboat.pth
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py'
custom_imports = dict(imports=['mmboat'], allow_failed_imports=False)
# checkpoints read with weights_only=True and checked against the model
# (mmboat.engine.SafeCheckpointHook)
default_hooks = dict(
    safe_checkpoint=dict(type='SafeCheckpointHook'),
    # an error in the log when the loss or the evaluated outputs go NaN
    # (mmboat.engine.FiniteCheckHook)
    finite_check=dict(type='FiniteCheckHook'))

model = dict(
    backbone=dict(
        _delete_=True,
        type='BOATCSWinTransformer',
        arch='tiny',
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/boat-cswin-t_in1k_mmboat.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
