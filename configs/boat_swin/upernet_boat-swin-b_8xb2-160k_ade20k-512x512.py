# UperNet with a BOAT-Swin-B backbone on ADE20K (512 x 512, 160k iterations):
# the BOAT-Swin-T config with the base backbone. Pretrained weights: convert
# the published file first:
#   python tools/model_converters/boat_swin_to_mmboat.py base.pth \
#       checkpoints/boat-swin-b_in1k_mmboat.pth
# Drop path 0.3 as in mmseg's Swin-T/S/B UperNet configs.
_base_ = './upernet_boat-swin-t_8xb2-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.3,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/boat-swin-b_in1k_mmboat.pth')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
