# UperNet with a BOAT-CSWin-B backbone on ADE20K (512 x 512, 160k iterations):
# the BOAT-CSWin-T config with the base backbone. Pretrained weights: convert
# the published file first:
#   python tools/model_converters/boat_cswin_to_mmboat.py cswin_base.pth.tar \
#       checkpoints/boat-cswin-b_in1k_mmboat.pth
# Drop path per size as in CSWin's released UperNet configs (T/S/B
# 0.3/0.4/0.6).
_base_ = './upernet_boat-cswin-t_8xb2-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.6,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/boat-cswin-b_in1k_mmboat.pth')),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
