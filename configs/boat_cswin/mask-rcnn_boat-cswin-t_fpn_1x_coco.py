# Mask R-CNN with a BOAT-CSWin-T backbone on COCO (detection + instance
# segmentation), 1x schedule (12 epochs), pipeline, schedule and optimiser of
# mmdet's Swin-T Mask R-CNN (AdamW lr 1e-4, weight decay 0.05, none on norms:
# the `norm` key also matches BOAT's `norm_fsla`).
# Pretrained weights: convert the published BOAT-CSWin-T file first:
#   python tools/model_converters/boat_cswin_to_mmboat.py cswin_tiny.pth.tar \
#       checkpoints/boat-cswin-t_in1k_mmboat.pth
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'
custom_imports = dict(imports=['mmboat'], allow_failed_imports=False)
# checkpoints read with weights_only=True and checked against the model
# (mmboat.engine.SafeCheckpointHook)
default_hooks = dict(
    safe_checkpoint=dict(type='SafeCheckpointHook'),
    # an error in the log when the loss or the evaluated outputs go NaN
    # (mmboat.engine.FiniteCheckHook)
    finite_check=dict(type='FiniteCheckHook'))

pretrained = 'checkpoints/boat-cswin-t_in1k_mmboat.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='BOATCSWinTransformer',
        arch='tiny',
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[64, 128, 256, 512]))
