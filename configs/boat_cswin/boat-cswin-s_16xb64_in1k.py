# BOAT-CSWin-S ImageNet-1k classification, 300 epochs: the BOAT-CSWin-T recipe
# with the small backbone. Drop path per size as published: T/S/B 0.2/0.4/0.5.
# To evaluate the published weights, convert them:
#   python tools/model_converters/boat_cswin_to_mmboat.py cswin_small.pth.tar \
#       checkpoints/boat-cswin-s_in1k_mmboat.pth
#   python tools/test.py configs/boat_cswin/boat-cswin-s_16xb64_in1k.py \
#       checkpoints/boat-cswin-s_in1k_mmboat.pth
_base_ = './boat-cswin-t_16xb64_in1k.py'

model = dict(backbone=dict(arch='small', drop_path_rate=0.4))
