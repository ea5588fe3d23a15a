"""An endless tiny-shapes classification stream for pretraining.

:class:`TinyShapesStream` draws image ``i`` of epoch ``e`` with the
tiny-shapes generator from a random generator seeded with ``(seed, e, i)``:
no image is ever seen twice, and any image can be drawn again from its
index alone, in any process. :class:`EpochStreamSampler` hands the dataset
those indices (``e * len(dataset) + i``), so with data workers, after a
resume and on several processes each epoch covers the same images as one
uninterrupted process. Use them together (the pretraining configs under
``configs/tiny/`` do)::

    train_dataloader = dict(
        sampler=dict(type='EpochStreamSampler', shuffle=True),
        dataset=dict(type='TinyShapesStream', images_per_epoch=2400,
                     pipeline=[...]))
"""
from typing import Iterator, List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import Compose, DefaultSampler
from mmengine.registry import DATA_SAMPLERS, DATASETS, TRANSFORMS, DefaultScope
from torch.utils.data import Dataset

from .tiny_shapes import CLASSES, MAX_OBJECTS, draw_scene, draw_single_shape

# keeps the stream's generators apart from make_tiny_datasets' (seed, task,
# split) ones, whose second entry is a task index below 3
STREAM_KEY = 1000


@DATA_SAMPLERS.register_module()
class EpochStreamSampler(DefaultSampler):
    """MMEngine's ``DefaultSampler`` (same order, same split over
    processes) that yields ``epoch * len(dataset) + i`` instead of ``i``, so
    that a stream dataset draws new images every epoch.

    ``EpochBasedTrainLoop`` calls :meth:`set_epoch` before each epoch, also
    after a resume.
    """

    def __iter__(self) -> Iterator[int]:
        offset = self.epoch * len(self.dataset)
        return (offset + i for i in super().__iter__())


@DATASETS.register_module()
class TinyShapesStream(Dataset):
    """Tiny-shapes classification images drawn on demand, never repeated.

    Index ``e * images_per_epoch + i`` is image ``i`` of epoch ``e``, drawn
    from ``numpy.random.default_rng((seed, STREAM_KEY, e, i))`` by the same
    code, at the same difficulty, as the files of
    :func:`~mmboat.datasets.make_tiny_datasets`:

    - ``mode='single'``: one shape of class ``i % 4`` (balanced in every
      epoch), as in its ``imagenet/`` folders (64 x 64);
    - ``mode='scene'``: 1 to 5 shapes that may hide each other, as in its
      ``ade/`` images (128 x 128); the label is the class of the largest
      visible shape.

    Args:
        pipeline (Sequence[dict]): transforms after loading, e.g.
            ``[dict(type='RandomFlip', ...), dict(type='PackInputs')]``.
        images_per_epoch (int): ``len()`` of the dataset. Default: 2400.
        side (int): image side. Default: 64.
        mode (str): 'single' or 'scene'. Default: 'single'.
        seed (int): the stream; the same seed draws the same images.
            Default: 0.
        with_seg (bool): also give ``gt_seg_map``, the (side, side) uint8
            label map of the visible shapes (0 background, 1-4
            :data:`CLASSES`), for a dense auxiliary loss. Default: False.
        metainfo (dict, optional): ignored but for ``classes``, which must
            be :data:`CLASSES` (configs pass it to every dataset).

    The results given to ``pipeline`` are those of ``LoadImageFromFile``:
    ``img`` (side, side, 3) uint8 in BGR order, ``img_shape``,
    ``ori_shape``, plus ``gt_label`` and ``sample_idx``.
    """
    METAINFO = dict(classes=CLASSES)

    def __init__(self,
                 pipeline: Sequence[dict] = (),
                 images_per_epoch: int = 2400,
                 side: int = 64,
                 mode: str = 'single',
                 seed: int = 0,
                 with_seg: bool = False,
                 metainfo: Optional[dict] = None):
        if not isinstance(images_per_epoch, int) or images_per_epoch < 1:
            raise ValueError('TinyShapesStream: images_per_epoch must be a '
                             f'positive int, got {images_per_epoch!r}')
        if not isinstance(side, int) or side < 16:
            raise ValueError('TinyShapesStream: side must be an int >= 16 '
                             f'(the shapes need room), got {side!r}')
        if mode not in ('single', 'scene'):
            raise ValueError("TinyShapesStream: mode must be 'single' or "
                             f"'scene', got {mode!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError('TinyShapesStream: seed must be an int >= 0, '
                             f'got {seed!r}')
        classes = (metainfo or {}).get('classes', CLASSES)
        if tuple(classes) != CLASSES:
            raise ValueError(f'TinyShapesStream: its classes are {CLASSES}, '
                             f'not {tuple(classes)}: remove `classes` from '
                             'its metainfo or set them to these')
        self.images_per_epoch = images_per_epoch
        self.side, self.mode, self.seed = side, mode, seed
        self.with_seg = with_seg
        # mmpretrain's transforms, whatever the default scope (a runner of
        # another library, or none)
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            self.pipeline = Compose([
                TRANSFORMS.build(t) if isinstance(t, dict) else t
                for t in pipeline
            ])

    @property
    def metainfo(self) -> dict:
        return dict(self.METAINFO)

    def __len__(self) -> int:
        return self.images_per_epoch

    def get_cat_ids(self, idx: int) -> List[int]:
        """The class of image ``idx`` (mmpretrain's dataset interface)."""
        return [self.draw(idx)['gt_label']]

    def draw(self, idx: Union[int, np.integer]) -> dict:
        """Image ``idx`` before the pipeline: ``img`` (BGR), ``gt_label``
        and, with ``with_seg``, ``gt_seg_map``."""
        if idx < 0:
            raise IndexError(f'TinyShapesStream: index {idx} < 0')
        epoch, i = divmod(int(idx), self.images_per_epoch)
        rng = np.random.default_rng((self.seed, STREAM_KEY, epoch, i))
        if self.mode == 'single':
            label = i % len(CLASSES)
            img, mask = draw_single_shape(rng, self.side, label)
            seg = mask.astype(np.uint8) * (label + 1)
        else:
            img, objects = draw_scene(rng, self.side,
                                      int(rng.integers(1, MAX_OBJECTS + 1)))
            seg = np.zeros((self.side, self.side), np.uint8)
            for obj in objects:
                seg[obj['mask']] = obj['label'] + 1
            areas = [obj['mask'].sum() for obj in objects]
            label = objects[int(np.argmax(areas))]['label']
        results = dict(
            img=np.ascontiguousarray(img[..., ::-1]),
            img_shape=img.shape[:2],
            ori_shape=img.shape[:2],
            gt_label=label,
            sample_idx=int(idx))
        if self.with_seg:
            results['gt_seg_map'] = seg
        return results

    def __getitem__(self, idx: int) -> dict:
        return self.pipeline(self.draw(idx))
