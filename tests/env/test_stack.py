"""The OpenMMLab stack is real: compiled mmcv ops, stock mmdet / mmseg /
mmpretrain models built from the configs shipped inside the packages."""
import os.path as osp

import torch


def shipped_config(package, relpath):
    mod = __import__(package)
    path = osp.join(osp.dirname(mod.__file__), '.mim', 'configs', relpath)
    assert osp.isfile(path), f'{package} does not ship {relpath}'
    return path


def test_mmcv_ops_are_compiled_and_run_on_cpu():
    from mmcv.ops import RoIAlign, nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.],
                          [20., 20., 30., 30.], [0., 0., 9., 9.]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [3, 2]
    torch.testing.assert_close(dets[:, 4], torch.tensor([0.95, 0.7]))
    # RoIAlign of a linear ramp is the ramp at the bin centres
    feat = torch.arange(16.).view(1, 1, 4, 4)
    rois = torch.tensor([[0., 0., 0., 4., 4.]])
    roi_align = RoIAlign((2, 2),
                         spatial_scale=1.,
                         sampling_ratio=1,
                         aligned=True)
    out = roi_align(feat, rois)
    # bin centres at (0.5, 0.5) .. (2.5, 2.5) minus 0.5 (aligned)
    # -> pixels 0.5, 2.5
    expected = torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]])
    torch.testing.assert_close(out, expected)


def _det_inputs(h, w):
    from mmdet.structures import DetDataSample
    img = torch.randint(0, 255, (3, h, w), dtype=torch.uint8)
    sample = DetDataSample(
        metainfo=dict(
            img_shape=(h, w),
            ori_shape=(h, w),
            scale_factor=(1., 1.),
            pad_shape=(h, w),
            batch_input_shape=(h, w)))
    return dict(inputs=[img], data_samples=[sample])


def test_stock_mmdet_mask_rcnn_predicts():
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    register_all_modules()
    cfg = Config.fromfile(
        shipped_config('mmdet', 'mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'))
    model = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        results = model.test_step(_det_inputs(160, 224))
    pred = results[0].pred_instances
    assert pred.bboxes.shape[1] == 4
    assert len(pred.bboxes) == len(pred.scores) == len(pred.masks)
    assert pred.masks.shape[1:] == (160, 224)


def test_stock_mmseg_upernet_forward():
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(
        shipped_config('mmseg',
                       'upernet/upernet_r50_4xb4-80k_ade20k-512x512.py'))
    model = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 128, 128), mode='tensor')
    assert out.shape == (1, 150, 32, 32)
    assert torch.isfinite(out).all()


def test_stock_mmpretrain_image_classifier():
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(
        shipped_config('mmpretrain', 'resnet/resnet18_8xb32_in1k.py'))
    model = MODELS.build(cfg.model).eval()
    assert type(model).__name__ == 'ImageClassifier'
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 64, 64), mode='tensor')
    assert logits.shape == (2, 1000)
