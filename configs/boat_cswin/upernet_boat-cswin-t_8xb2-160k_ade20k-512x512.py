# UperNet with a BOAT-CSWin-T backbone on ADE20K, schedule and optimiser of
# mmseg's Swin-T UperNet. Pretrained weights: convert the published file:
#   python tools/model_converters/boat_cswin_to_mmboat.py cswin_tiny.pth.tar \
#       checkpoints/boat-cswin-t_in1k_mmboat.pth
_base_ = 'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py'  # noqa
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
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='BOATCSWinTransformer',
        arch='tiny',
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[64, 128, 256, 512], num_classes=150),
    auxiliary_head=dict(in_channels=256, num_classes=150))
