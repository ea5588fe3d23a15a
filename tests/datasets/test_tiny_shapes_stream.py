"""TinyShapesStream and EpochStreamSampler: deterministic, never the same
image twice, the same images per epoch with workers, on two processes and
after a resume; the same drawing code as the written folders."""
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from PIL import Image
from torch.utils.data import DataLoader

import mmboat  # noqa: F401  (registers the stream and the hook)
from mmboat.datasets import (CLASSES, EpochStreamSampler, TinyShapesStream,
                             make_tiny_datasets)


def fingerprint(img: np.ndarray) -> bytes:
    return img.tobytes()


def test_images_are_deterministic_and_distinct():
    a, b = TinyShapesStream(images_per_epoch=8), TinyShapesStream(
        images_per_epoch=8)
    for idx in (0, 5, 8, 1234567):
        ra, rb = a[idx], b[idx]
        assert np.array_equal(ra['img'], rb['img'])
        assert ra['gt_label'] == rb['gt_label']
    # no image is drawn twice, across epochs included (index e * 8 + i)
    prints = {fingerprint(a[i]['img']) for i in range(64)}
    assert len(prints) == 64
    # another seed is another stream
    other = TinyShapesStream(images_per_epoch=8, seed=1)
    assert not np.array_equal(other[3]['img'], a[3]['img'])


def test_single_mode_matches_the_class_folder_generator(tmp_path):
    """Image i of a stream is drawn by the code that writes the ImageNet-
    style folders: class i % 4, 64 x 64, BGR like LoadImageFromFile."""
    stream = TinyShapesStream(images_per_epoch=4, with_seg=True)
    counts = np.zeros(len(CLASSES), int)
    for i in range(8):
        r = stream[i]
        assert r['img'].shape == (64, 64, 3) and r['img'].dtype == np.uint8
        assert r['gt_label'] == i % 4
        counts[r['gt_label']] += 1
        seg = r['gt_seg_map']
        assert set(np.unique(seg)) == {0, r['gt_label'] + 1}
        # the shape is drawn in one colour plus sensor noise: its pixels
        # differ from their median far less than the background's spread
        shape = r['img'][seg > 0].astype(float)
        assert np.abs(shape - np.median(shape, 0)).mean() < 12
    assert (counts == 2).all()
    # the folders written from a seed are unchanged by the shared drawing
    # function: regenerate the first val images and compare with the files
    root = make_tiny_datasets(
        str(tmp_path),
        tasks=('cls', ),
        sizes=dict(cls=dict(train=(4, 64), val=(4, 64))))['cls']
    from mmboat.datasets.tiny_shapes import draw_single_shape
    rng = np.random.default_rng([0, 0, 1])
    for i in range(4):
        img, _ = draw_single_shape(rng, 64, i % 4)
        path = Path(root) / 'val' / CLASSES[i % 4] / f'{i:06d}.png'
        assert np.array_equal(np.asarray(Image.open(path)), img)


def test_scene_mode_labels_the_largest_shape():
    stream = TinyShapesStream(
        images_per_epoch=16, side=128, mode='scene', with_seg=True)
    for i in range(6):
        r = stream[i]
        assert r['img'].shape == (128, 128, 3)
        seg = r['gt_seg_map']
        areas = np.bincount(seg.ravel(), minlength=5)[1:]
        # the label's class covers the most pixels unless two shapes of
        # other classes together do; the largest single shape is that class
        assert areas[r['gt_label']] > 0


def test_sampler_offsets_epochs_and_splits_like_default_sampler(monkeypatch):
    stream = TinyShapesStream(images_per_epoch=10)
    sampler = EpochStreamSampler(stream, shuffle=True, seed=3)
    epochs = []
    for e in range(3):
        sampler.set_epoch(e)
        epochs.append(list(sampler))
    for e, indices in enumerate(epochs):
        assert sorted(indices) == list(range(10 * e, 10 * e + 10))
    assert len(sampler) == 10
    # two processes (DefaultSampler's rank::world split) cover exactly the
    # images of one process, epoch by epoch
    import mmengine.dataset.sampler as sampler_module
    for e in range(2):
        union = []
        for rank in (0, 1):
            monkeypatch.setattr(
                sampler_module, 'get_dist_info', lambda r=rank: (r, 2))
            s = EpochStreamSampler(stream, shuffle=True, seed=3)
            s.set_epoch(e)
            union += list(s)
        assert sorted(union) == sorted(epochs[e])


def test_workers_draw_the_same_batches_as_the_main_process():
    pipeline = [dict(type='PackInputs', algorithm_keys=('gt_seg_map', ))]
    stream = TinyShapesStream(pipeline, images_per_epoch=12, with_seg=True)
    sampler = EpochStreamSampler(stream, shuffle=True, seed=0)
    sampler.set_epoch(2)

    def batches(workers):
        loader = DataLoader(
            stream,
            batch_size=4,
            sampler=sampler,
            num_workers=workers,
            collate_fn=pseudo_collate)
        return [(torch.stack(b['inputs']),
                 [s.gt_label.item() for s in b['data_samples']],
                 np.stack([s.gt_seg_map for s in b['data_samples']]))
                for b in loader]

    main, workers = batches(0), batches(2)
    assert len(main) == 3
    for (x0, y0, s0), (x1, y1, s1) in zip(main, workers):
        assert torch.equal(x0, x1) and y0 == y1 and np.array_equal(s0, s1)


@pytest.mark.parametrize(
    'kwargs, match',
    [(dict(images_per_epoch=0), 'images_per_epoch must be a positive int'),
     (dict(side=8), 'side must be an int >= 16'),
     (dict(mode='multi'), "mode must be 'single' or 'scene'"),
     (dict(seed=-1), 'seed must be an int >= 0'),
     (dict(metainfo=dict(classes=('a', 'b'))), 'its classes are')])
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TinyShapesStream(**kwargs)


class Killed(Exception):
    pass


class RecordAndKill(Hook):
    """Records the images of every trained batch; raises :class:`Killed`
    after iteration ``kill_at`` (after its checkpoint)."""
    priority = 'LOWEST'

    def __init__(self, seen, kill_at=None):
        self.seen, self.kill_at = seen, kill_at

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        self.seen.append([s.sample_idx for s in data_batch['data_samples']])
        if runner.iter + 1 == self.kill_at:
            raise Killed


class MeanModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(inputs).float().mean()
        return dict(loss=(self.w * x / 255 - 1)**2)


def stream_runner(work_dir, seen, kill_at=None, resume=False):
    return Runner(
        model=MeanModel(),
        work_dir=str(work_dir),
        experiment_name=f'stream_{uuid.uuid4().hex}',
        train_dataloader=dict(
            dataset=dict(
                type='TinyShapesStream',
                images_per_epoch=12,
                pipeline=[
                    dict(type='RandomFlip', prob=0.5),
                    dict(type='PackInputs')
                ]),
            sampler=dict(type='EpochStreamSampler', shuffle=True),
            batch_size=3,
            num_workers=1,
            collate_fn=dict(type='pseudo_collate')),
        train_cfg=dict(type='ExactResumeEpochBasedTrainLoop', max_epochs=3),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=3),
            logger=dict(type='LoggerHook', interval=100),
            safe_checkpoint=dict(type='SafeCheckpointHook')),
        custom_hooks=[
            dict(type='ExactResumeHook'),
            RecordAndKill(seen, kill_at)
        ],
        default_scope='mmpretrain',
        randomness=dict(seed=0),
        resume=resume)


def test_a_killed_and_resumed_run_draws_the_same_images(tmp_path):
    """tools/train.py's runner with the stream, killed one batch into its
    second epoch and resumed from its checkpoint at iteration 6: the same
    images in the same batches as an uninterrupted run, none twice."""
    full = []
    stream_runner(tmp_path / 'full', full).train()
    assert len(full) == 12  # 3 epochs of 4 batches
    flat = [i for batch in full for i in batch]
    assert sorted(flat) == list(range(36))  # each epoch its own images

    killed = []
    with pytest.raises(Killed):
        stream_runner(tmp_path / 'killed', killed, kill_at=8).train()
    resumed = []
    stream_runner(tmp_path / 'killed', resumed, resume=True).train()
    assert killed[:6] + resumed == full
