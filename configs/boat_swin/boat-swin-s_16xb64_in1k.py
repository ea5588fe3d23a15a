# BOAT-Swin-S ImageNet-1k classification, 300 epochs: the BOAT-Swin-T recipe
# with the small backbone. Drop path per size as published: T/S/B 0.2/0.3/0.5.
# To evaluate the published weights, convert them:
#   python tools/model_converters/boat_swin_to_mmboat.py small.pth \
#       checkpoints/boat-swin-s_in1k_mmboat.pth
#   python tools/test.py configs/boat_swin/boat-swin-s_16xb64_in1k.py \
#       checkpoints/boat-swin-s_in1k_mmboat.pth
_base_ = './boat-swin-t_16xb64_in1k.py'

model = dict(backbone=dict(arch='small', drop_path_rate=0.3))
