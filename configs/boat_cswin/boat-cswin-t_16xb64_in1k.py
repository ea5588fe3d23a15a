# BOAT-CSWin-T ImageNet-1k classification, 300 epochs (mmpretrain
# ImageClassifier: backbone + global average pooling + linear head) with the
# Swin / DeiT recipe of mmpretrain's Swin-T config: AdamW (lr 1e-3 at batch
# 1024, weight decay 0.05, none on norms and biases), 20 warm-up epochs then
# cosine, RandAugment, random erasing, Mixup + CutMix, label smoothing 0.1.
# Added here: an EMA of the weights as in the BOAT-CSWin release (MMEngine's
# EMAHook: validation runs on it and checkpoints store it as `state_dict`).
# To evaluate the published weights, convert them:
#   python tools/model_converters/boat_cswin_to_mmboat.py cswin_tiny.pth.tar \
#       checkpoints/boat-cswin-t_in1k_mmboat.pth
#   python tools/test.py configs/boat_cswin/boat-cswin-t_16xb64_in1k.py \
#       checkpoints/boat-cswin-t_in1k_mmboat.pth
_base_ = 'mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py'
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
        out_indices=(3, )),
    head=dict(in_channels=512))

# The release's EMA decay (0.99984 per step at batch 2048 for T and S,
# 0.99992 at batch 1024 for B) is momentum 8e-5 per step at batch 1024.
custom_hooks = [dict(type='EMAHook', momentum=8e-5, priority='ABOVE_NORMAL')]
