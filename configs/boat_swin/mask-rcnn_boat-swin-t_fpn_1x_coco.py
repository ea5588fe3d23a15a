# Mask R-CNN with a BOAT-Swin-T backbone on COCO (detection + instance
# segmentation), 1x schedule (12 epochs), pipeline, schedule and optimiser of
# mmdet's Swin-T Mask R-CNN (AdamW lr 1e-4, weight decay 0.05, none on norms
# and relative position tables: the `norm` key also matches BOAT's
# `norm_fsla`).
# Pretrained weights: convert the published BOAT-Swin-T file first:
#   python tools/model_converters/boat_swin_to_mmboat.py tiny.pth \
#       checkpoints/boat-swin-t_in1k_mmboat.pth
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'
custom_imports = dict(imports=['mmboat'], allow_failed_imports=False)
# checkpoints read with weights_only=True and checked against the model
# (mmboat.engine.SafeCheckpointHook)
default_hooks = dict(
    safe_checkpoint=dict(type='SafeCheckpointHook'),
    # an error in the log when the loss or the evaluated outputs go NaN
    # (mmboat.engine.FiniteCheckHook)
    finite_check=dict(type='FiniteCheckHook'))

pretrained = 'checkpoints/boat-swin-t_in1k_mmboat.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='BOATSwinTransformer',
        arch='tiny',
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
