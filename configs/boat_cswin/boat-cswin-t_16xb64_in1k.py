# BOAT-CSWin-T ImageNet-1k classification (mmpretrain ImageClassifier:
# backbone + global average pooling + linear head), training recipe of
# mmpretrain's Swin-T. To evaluate the published weights, convert them:
#   python tools/model_converters/boat_cswin_to_mmboat.py cswin_tiny.pth.tar boat-cswin-t.pth
#   python tools/test.py configs/boat_cswin/boat-cswin-t_16xb64_in1k.py boat-cswin-t.pth
_base_ = 'mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py'
custom_imports = dict(imports=['mmboat'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='BOATCSWinTransformer',
        arch='tiny',
        drop_path_rate=0.2,
        out_indices=(3, )),
    head=dict(in_channels=512))
