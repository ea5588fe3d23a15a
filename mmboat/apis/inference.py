"""Inference and pictures of the predictions for any mmboat config of
mmdet, mmsegmentation or mmpretrain, through the libraries' own inferencers
and visualisers.

    from mmboat.apis import visualize
    paths, preds = visualize('demo.jpg', CONFIG, weights=CKPT,
                             out_dir='outputs/demo')

Class names come from the checkpoint's ``dataset_meta`` or, when the
checkpoint has none (or there is no checkpoint), from the metainfo of the
config's test dataset.
"""
import copy
import importlib
import os
import os.path as osp
import warnings
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope
from PIL import Image

import mmboat  # noqa: F401  (registers the mmboat modules)
from .weights import load_model_weights

#: ``default_scope`` of a config -> task name
TASKS = {'mmdet': 'det', 'mmseg': 'seg', 'mmpretrain': 'cls'}
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
#: classification pictures of smaller images are upscaled to this short
#: side, so that the drawn class names stay readable
MIN_CLS_PICTURE_SIDE = 224

PathLike = Union[str, os.PathLike]
ConfigLike = Union[PathLike, Config]


def load_config(config: ConfigLike) -> Config:
    """A :class:`Config` from a config file path (or a Config, as is)."""
    if isinstance(config, Config):
        return config
    if not osp.isfile(config):
        raise FileNotFoundError(
            f'config file {config} does not exist; give the path of a .py '
            'config, e.g. configs/boat_swin/boat-swin-t_16xb64_in1k.py')
    return Config.fromfile(str(config))


def task_of(config) -> str:
    """``'det'``, ``'seg'`` or ``'cls'``: the task of a config, from its
    ``default_scope`` (``mmdet``, ``mmseg`` or ``mmpretrain``), or of an
    inferencer from :func:`build_inferencer`."""
    if not isinstance(config, (str, os.PathLike, Config)):
        for cls in type(config).__mro__:
            library = cls.__module__.split('.')[0]
            if library in TASKS and cls.__name__.endswith('Inferencer'):
                return TASKS[library]
        raise TypeError(
            'expected a config (path or Config) or an inferencer of mmdet, '
            f'mmseg or mmpretrain, got {type(config).__name__}')
    cfg = load_config(config)
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        name = cfg.filename or 'the config'
        raise ValueError(
            f"{name} has default_scope={scope!r}: inference handles configs "
            "of mmdet, mmseg and mmpretrain, which set default_scope to "
            "'mmdet', 'mmseg' or 'mmpretrain' (their default_runtime.py "
            "_base_ does); inherit one of those or set default_scope")
    return TASKS[scope]


def list_images(inputs: Union[PathLike, Sequence[PathLike]]) -> List[str]:
    """The image files of ``inputs``: an image path, a folder (its images,
    by extension, sorted by name; not recursive) or a list of those."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    images = []
    for path in map(str, inputs):
        if osp.isdir(path):
            found = sorted(
                osp.join(path, name) for name in os.listdir(path)
                if name.lower().endswith(IMAGE_EXTENSIONS)
                and osp.isfile(osp.join(path, name)))
            if not found:
                raise ValueError(
                    f'folder {path} holds no image (files ending in '
                    f'{", ".join(IMAGE_EXTENSIONS)})')
            images += found
        elif osp.isfile(path):
            images.append(path)
        else:
            raise FileNotFoundError(
                f'input {path} does not exist; give an image file, a folder '
                'of images or a list of those')
    if not images:
        raise ValueError('no input image given')
    return images


def _check_weights(weights: Optional[PathLike]) -> Optional[str]:
    if weights is None:
        return None
    weights = str(weights)
    if not weights.startswith(('http://', 'https://')) \
            and not osp.isfile(weights):
        raise FileNotFoundError(
            f'checkpoint {weights} does not exist; give the .pth file '
            'written by tools/train.py (or by a converter in '
            'tools/model_converters/), or no weights for a randomly '
            'initialised model')
    return weights


def check_device(device: str) -> None:
    """Refuse a device this machine does not have, naming what it has."""
    import torch
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f'device {device!r} is not a device name: use '
                         "'cpu', 'cuda' or 'cuda:N'") from e
    if dev.type == 'cuda':
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f'device {device!r}: this machine has no usable '
                             'CUDA GPU; use --device cpu')
        if dev.index is not None and dev.index >= count:
            raise ValueError(f'device {device!r}: this machine has {count} '
                             f'CUDA GPU(s), cuda:0 to cuda:{count - 1}')


def readable_images(images: Sequence[str]) -> List[str]:
    """The images that decode; each other one is skipped with a warning.

    Raises:
        ValueError: none of them decodes.
    """
    import cv2
    good = []
    for image in images:
        if cv2.imread(image, cv2.IMREAD_UNCHANGED) is None:
            warnings.warn(f'skipping {image}: it is not an image that '
                          'OpenCV can decode (damaged or another format)')
        else:
            good.append(image)
    if not good:
        raise ValueError('none of the inputs is a readable image: ' +
                         ', '.join(images[:5]) +
                         (', ...' if len(images) > 5 else ''))
    return good


def _config_dataset_meta(cfg: Config, scope: str) -> dict:
    """Metainfo of the config's test dataset (not loaded: lazy init)."""
    dataset_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    dataset_cfg['lazy_init'] = True
    datasets = importlib.import_module(f'{scope}.registry').DATASETS
    with DefaultScope.overwrite_default_scope(scope):
        return dict(datasets.build(dataset_cfg).metainfo)


def build_inferencer(config: ConfigLike,
                     weights: Optional[PathLike] = None,
                     device: str = 'cpu',
                     allow_partial: bool = False):
    """The inferencer of the config's library: mmdet's ``DetInferencer``,
    mmseg's ``MMSegInferencer`` or mmpretrain's
    ``ImageClassificationInferencer``.

    Args:
        config: config file path or :class:`Config`.
        weights: checkpoint path (or URL); ``None`` keeps the random
            initialisation (backbone ``init_cfg`` is not applied either).
            Read without running code from it and loaded by
            :func:`mmboat.apis.load_model_weights`: weights that hold NaN
            or Inf, or that do not fit a model with an mmboat backbone,
            are refused.
        device: ``'cpu'``, ``'cuda'``, ``'cuda:1'``...
        allow_partial: load the weights that fit and warn about the others
            instead of refusing (``--allow-partial`` of the tools).
    """
    cfg = load_config(config)
    task = task_of(cfg)
    weights = _check_weights(weights)
    check_device(device)
    scope = cfg.default_scope
    # mmpretrain's inferencer builds its pipeline in the current scope
    init_default_scope(scope)
    with warnings.catch_warnings():
        # the libraries warn that a model without weights is random: the
        # weights are loaded below, by mmboat's loader
        warnings.simplefilter('ignore', UserWarning)
        if task == 'det':
            from mmdet.apis import DetInferencer
            inferencer = DetInferencer(
                model=copy.deepcopy(cfg), weights=None, device=device)
        elif task == 'seg':
            from mmseg.apis import MMSegInferencer
            inferencer = MMSegInferencer(
                model=copy.deepcopy(cfg), weights=None, device=device)
        else:
            from mmpretrain.apis import ImageClassificationInferencer
            inferencer = ImageClassificationInferencer(
                model=cfg, pretrained=False, device=device)
    checkpoint = {}
    if weights is not None:
        checkpoint = load_model_weights(
            inferencer.model, weights, allow_partial=allow_partial)
    config_meta = _config_dataset_meta(cfg, scope)
    dataset_meta = checkpoint.get('meta', {}).get('dataset_meta') or \
        config_meta
    if task == 'det':
        meta = {k.lower(): v for k, v in dataset_meta.items()}
        # mmdet's priority: the config's palette, then the checkpoint's;
        # mmdet's visualiser takes colours as tuples
        palette = config_meta.get('palette') or meta.get('palette')
        meta['palette'] = [tuple(c) for c in palette] if isinstance(
            palette, list) else (palette or 'random')
        inferencer.model.dataset_meta = meta
        inferencer.visualizer.dataset_meta = meta
    elif task == 'seg':
        # MMSegInferencer gives the model's meta to its visualiser
        inferencer.model.dataset_meta = dict(
            classes=dataset_meta.get('classes'),
            palette=dataset_meta.get('palette'))
    else:
        inferencer.classes = dataset_meta.get('classes')
    return inferencer


def class_names(inferencer) -> Optional[Sequence[str]]:
    """The class names an inferencer from :func:`build_inferencer` draws
    (``None`` when neither checkpoint nor config names them)."""
    if task_of(inferencer) == 'cls':
        return inferencer.classes
    return inferencer.model.dataset_meta.get('classes')


def _picture_name(image: str, task: str) -> str:
    # the names the libraries give: mmdet / mmseg keep the file name,
    # mmpretrain writes <stem>.png
    name = osp.basename(image)
    return Path(name).stem + '.png' if task == 'cls' else name


def visualize(inputs: Union[PathLike, Sequence[PathLike]],
              model,
              weights: Optional[PathLike] = None,
              out_dir: PathLike = 'outputs/demo',
              device: str = 'cpu',
              score_thr: float = 0.3,
              topk: int = 5) -> Tuple[List[str], list]:
    """Predict on images and write one picture of the predictions per image
    to ``out_dir/vis/``, drawn by the library's visualiser, of the image's
    size (classification: at least 224 on the short side).

    Args:
        inputs: an image path, a folder (all its images, sorted) or a list.
        model: a config (path or :class:`Config`) or an inferencer from
            :func:`build_inferencer` (then ``weights`` and ``device`` are
            those it was built with).
        weights, device: as in :func:`build_inferencer`.
        out_dir: where ``vis/`` goes. Detection also writes
            ``preds/<name>.json``, segmentation ``pred/<n>_pred.png``
            (label maps), as their inferencers do.
        score_thr: detection: draw boxes scoring at least this.
        topk: classification: draw the ``topk`` best classes (on images
            upscaled to a short side of 224 when they are smaller).

    Returns:
        The paths of the pictures, in input order, and the predictions of
        the library's inferencer, one per image: detection a dict of
        ``labels``, ``scores``, ``bboxes`` (and ``masks``, RLE), segmentation
        the label map (H x W array), classification a dict of ``pred_label``,
        ``pred_score``, ``pred_scores`` (and ``pred_class``).
    """
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise ValueError(f'topk must be an integer >= 1, got {topk!r}')
    if osp.exists(str(out_dir)) and not osp.isdir(str(out_dir)):
        raise ValueError(f'out_dir {out_dir} is a file: the pictures go to '
                         'a folder; give another path')
    images = readable_images(list_images(inputs))
    is_config = isinstance(model, (str, os.PathLike, Config))
    if is_config:
        model = load_config(model)
    task = task_of(model)
    if not is_config and weights is not None:
        raise ValueError(
            'weights are given with an inferencer that is already built: '
            'pass them to build_inferencer instead')
    vis_dir = osp.join(str(out_dir), 'vis')
    paths = [osp.join(vis_dir, _picture_name(i, task)) for i in images]
    seen = {}
    for image, path in zip(images, paths):
        if path in seen:
            raise ValueError(
                f'{seen[path]} and {image} would both be drawn to {path}; '
                'rename one or run them separately')
        seen[path] = image

    inferencer = build_inferencer(model, weights, device) if is_config \
        else model
    os.makedirs(vis_dir, exist_ok=True)
    if task == 'det':
        result = inferencer(
            images,
            out_dir=str(out_dir),
            pred_score_thr=score_thr,
            no_save_pred=False)
        predictions = result['predictions']
    elif task == 'seg':
        result = inferencer(images, out_dir=str(out_dir))
        predictions = result['predictions']
        if len(images) == 1:  # MMSegInferencer unwraps a single result
            predictions = [predictions]
    else:
        samples = inferencer(images, return_datasamples=True)
        for sample in samples:
            k = min(topk, sample.pred_score.numel())
            sample.set_pred_label(sample.pred_score.topk(k).indices)
        for image, sample in zip(images, samples):
            with Image.open(image) as img:
                short_side = min(img.size)
            resize = MIN_CLS_PICTURE_SIDE \
                if short_side < MIN_CLS_PICTURE_SIDE else None
            inferencer.visualize([image], [sample],
                                 show_dir=vis_dir,
                                 resize=resize)
        predictions = inferencer.postprocess(samples, None)
    return paths, predictions
