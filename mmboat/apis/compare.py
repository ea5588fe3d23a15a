"""A picture of a validation image's ground truth beside the model's
predictions, enlarged so that a person can read it."""
import copy
import os
import os.path as osp

import mmcv
import torch
import torch.nn.functional as F
from mmengine.dataset import pseudo_collate
from mmengine.registry import DATASETS, VISUALIZERS
from mmengine.structures import PixelData

from .inference import PathLike, build_inferencer, load_config, task_of


def _scale_masks(masks: torch.Tensor, scale: int) -> torch.Tensor:
    """(N, H, W) masks, nearest-upscaled ``scale`` times."""
    if len(masks) == 0:
        return masks.new_zeros(
            (0, masks.shape[-2] * scale, masks.shape[-1] * scale))
    return F.interpolate(
        masks[None].float(), scale_factor=scale,
        mode='nearest')[0].to(masks.dtype)


def _scale_sample(sample, task: str, scale: int):
    """The data sample with boxes, masks and label maps ``scale`` times
    larger (the image is upscaled the same way)."""
    sample = copy.deepcopy(sample)
    if task == 'det':
        for field in ('gt_instances', 'pred_instances'):
            instances = sample.get(field)
            if instances is None:
                continue
            bboxes = instances.bboxes
            bboxes = bboxes.tensor if hasattr(bboxes, 'tensor') else bboxes
            instances.bboxes = bboxes * scale
            if 'masks' in instances:
                masks = instances.masks
                if hasattr(masks, 'to_tensor'):  # BitmapMasks of the GT
                    masks = masks.to_tensor(torch.bool, 'cpu')
                instances.masks = _scale_masks(masks.bool(), scale)
    elif task == 'seg':
        for field in ('gt_sem_seg', 'pred_sem_seg'):
            if field in sample:
                sample.set_field(
                    PixelData(
                        data=_scale_masks(sample.get(field).data, scale)),
                    field)
    return sample


def draw_ground_truth_and_prediction(config,
                                     weights: PathLike,
                                     out_file: PathLike,
                                     index: int = 0,
                                     scale: int = 4,
                                     score_thr: float = 0.5,
                                     device: str = 'cpu') -> str:
    """Draw image ``index`` of the config's test set: its ground truth on
    the left and the model's predictions on the right (detection: boxes and
    masks scoring at least ``score_thr``; segmentation: label maps;
    classification: class names), enlarged ``scale`` times, with the
    library's own visualiser.

    Args:
        config: config path or :class:`~mmengine.config.Config`.
        weights: the checkpoint to predict with.
        out_file: where the picture (PNG or JPEG) goes.
        index: the test image. Default: 0.
        scale: enlargement (nearest for masks and maps, bilinear for the
            image). Default: 4.
        score_thr: detection: the lowest score drawn. Default: 0.5.
        device: where the model runs. Default: 'cpu'.

    Returns:
        str: ``out_file``.
    """
    cfg = load_config(config)
    task = task_of(cfg)
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f'scale must be an int >= 1, got {scale!r}')
    inferencer = build_inferencer(cfg, weights, device)
    model = inferencer.model
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    if not 0 <= index < len(dataset):
        raise IndexError(f'index {index} is outside the test set of '
                         f'{len(dataset)} images')
    with torch.no_grad():
        sample = model.test_step(pseudo_collate([dataset[index]]))[0]
    image = mmcv.imread(sample.img_path, channel_order='rgb')
    if scale > 1:
        image = mmcv.imrescale(image, scale, interpolation='bilinear')
    visualizer = VISUALIZERS.build(
        dict(
            cfg.visualizer,
            name=f'compare_{id(model)}',
            save_dir=None,
            vis_backends=None))
    # mmpretrain's inferencer keeps the class names itself
    visualizer.dataset_meta = dict(classes=inferencer.classes) \
        if task == 'cls' else model.dataset_meta
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    name = osp.basename(sample.img_path)
    if task == 'cls':
        visualizer.visualize_cls(
            image,
            sample,
            draw_gt=True,
            draw_pred=True,
            draw_score=True,
            out_file=str(out_file))
    else:
        extra = dict(pred_score_thr=score_thr) if task == 'det' else {}
        visualizer.add_datasample(
            name,
            image,
            _scale_sample(sample, task, scale),
            draw_gt=True,
            draw_pred=True,
            show=False,
            out_file=str(out_file),
            **extra)
    return str(out_file)


__all__ = ['draw_ground_truth_and_prediction']
