# BOAT-Swin-T ImageNet-1k classification, 300 epochs (mmpretrain
# ImageClassifier: backbone + global average pooling + linear head) with the
# Swin / DeiT recipe of mmpretrain's Swin-T config: AdamW (lr 1e-3 at batch
# 1024, weight decay 0.05, none on norms, biases and relative position
# tables), 20 warm-up epochs then cosine, RandAugment, random erasing, Mixup +
# CutMix, label smoothing 0.1. Added here: an EMA of the weights (MMEngine's
# EMAHook: validation runs on it and checkpoints store it as `state_dict`).
# To evaluate the published weights, convert them:
#   python tools/model_converters/boat_swin_to_mmboat.py tiny.pth \
#       checkpoints/boat-swin-t_in1k_mmboat.pth
#   python tools/test.py configs/boat_swin/boat-swin-t_16xb64_in1k.py \
#       checkpoints/boat-swin-t_in1k_mmboat.pth
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
        type='BOATSwinTransformer',
        arch='tiny',
        drop_path_rate=0.2,
        out_indices=(3, )),
    head=dict(in_channels=768))

# EMA decay 0.99984 per step at batch 2048 (the BOAT-CSWin release) is
# momentum 8e-5 per step at batch 1024 for the same averaging horizon in
# epochs.
custom_hooks = [dict(type='EMAHook', momentum=8e-5, priority='ABOVE_NORMAL')]
