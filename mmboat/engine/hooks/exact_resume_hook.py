"""Resume a training run exactly where it stopped, even in the middle of an
epoch.

What MMEngine 0.10 restores on ``resume`` (``Runner.resume``): weights,
optimizer, parameter schedulers, message hub, epoch and iteration counters,
the seed (and, from it, the sampler's order of each epoch). What it does
not:

1. ``EpochBasedTrainLoop`` starts the interrupted epoch again from its first
   batch: the batches trained before the checkpoint are trained twice, the
   run makes more iterations than ``max_epochs`` epochs and the schedulers
   step past their end. (``IterBasedTrainLoop`` skips them, by loading them
   again and discarding them.)
2. The random states of the training process (``random``, ``numpy``,
   ``torch``, CUDA) are not saved: after a resume they are those of a fresh
   start, so drop path masks, dropout, in-process augmentation and random
   sampling inside the model differ from an uninterrupted run.
3. Each validation draws a number from ``torch``'s global generator (the
   seed of its DataLoader iterator), so a run that validated between the
   checkpoint and the next epoch continues from another random state than
   its resume.

:class:`ExactResumeHook` fixes the three: it stores the random states of
every process in each checkpoint, skips the batches of the interrupted
epoch that were already trained (it loads them again and drops them, so
that the data workers, re-seeded by MMEngine at each start, draw their
augmentations as in an uninterrupted run) and restores the random states
right before the first batch that was not; validation leaves the random
states as it found them. With it, a run killed at any point and resumed
from its last checkpoint ends with the weights of an uninterrupted run, bit
for bit on the CPU with ``randomness=dict(deterministic=True)``.

What it cannot restore: the random state inside *persistent* data workers
(``persistent_workers=True``, as in the mmdet configs) of an epoch-based
run: it continues from epoch to epoch and is lost with the process, so a
run resumed after its first epoch draws other augmentations (the hook
warns); set ``train_dataloader.persistent_workers=False`` for an exact
resume. ``IterBasedTrainLoop`` (mmseg) is exact either way: MMEngine
replays every batch since the start. Nor can it make runs on different
numbers of processes draw the same random numbers: each process has its
own generators and MMEngine seeds each rank's data workers differently.

Enable it in a config (``import mmboat`` registers both), with the
epoch-based loop that can start an epoch after its trained batches::

    custom_hooks = [dict(type='ExactResumeHook')]
    train_cfg = dict(type='ExactResumeEpochBasedTrainLoop', max_epochs=12)

(an iteration-based config keeps MMEngine's ``IterBasedTrainLoop``).
"""
import random
from typing import Callable, List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop

from ..loops import ExactResumeEpochBasedTrainLoop

KEY = 'mmboat_resume'


def get_rng_state() -> dict:
    """The random states of ``random``, ``numpy``, ``torch`` and CUDA (when
    in use) of this process, as plain data and tensors."""
    py_version, py_keys, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = dict(
        python=[py_version, list(py_keys), py_gauss],
        numpy=[np_name,
               np_keys.tolist(), np_pos, np_has_gauss, np_gauss],
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`get_rng_state` returned."""
    py_version, py_keys, py_gauss = state['python']
    random.setstate((py_version, tuple(py_keys), py_gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state['numpy']
    np.random.set_state(
        (np_name, np.asarray(np_keys,
                             dtype=np.uint32), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(state['torch'].cpu())
    cuda = state.get('cuda')
    if cuda and torch.cuda.is_available() and \
            len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


class _RestoreBeforeNext:
    """Wraps ``IterBasedTrainLoop.dataloader_iterator``: calls ``restore()``
    before batch number ``skip`` (0-based) is fetched."""

    def __init__(self, iterator, skip: int, restore):
        self._iterator, self._skip, self._restore = iterator, skip, restore
        self._count = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self._count == self._skip:
            self._restore()
        self._count += 1
        return next(self._iterator)

    def __getattr__(self, name):
        return getattr(self._iterator, name)


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Make ``resume`` continue a training run exactly (see the module
    docstring): random states in checkpoints, the trained batches of an
    interrupted epoch skipped, validation neutral to the random states.
    It draws no random number itself: a run that is not resumed trains as
    without it (validation aside).

    Its priority (``LOW``) puts it before ``CheckpointHook`` (``VERY_LOW``)
    at each iteration, so that in a distributed run it gathers the random
    states of all processes before rank 0 saves them.
    """
    priority = 'LOW'

    def __init__(self) -> None:
        self._gathered: Optional[tuple] = None  # (iter, states)
        self._val_states: Optional[List[dict]] = None
        self._in_val = False
        self._loaded: Optional[dict] = None
        self._restore_at_epoch: Optional[Callable] = None

    # ------------------------------------------------------------- saving
    def _checkpoint_due(self, runner, by_epoch: bool) -> bool:
        """Whether a CheckpointHook saves at this iteration (epoch)."""
        for h in runner.hooks:
            if not isinstance(h, CheckpointHook) or h.by_epoch != by_epoch:
                continue
            if by_epoch:
                every = h.every_n_epochs(runner, h.interval, h.save_begin)
                last = h.is_last_train_epoch(runner)
            else:
                every = h.every_n_train_iters(runner, h.interval, h.save_begin)
                last = h.is_last_train_iter(runner)
            if every or (h.save_last and last):
                return True
        return False

    def _gather_if_due(self, runner, by_epoch: bool) -> None:
        if get_dist_info()[1] > 1 and self._checkpoint_due(runner, by_epoch):
            self._gathered = (runner.iter, all_gather_object(get_rng_state()))

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        self._gather_if_due(runner, by_epoch=False)

    def after_train_epoch(self, runner) -> None:
        self._gather_if_due(runner, by_epoch=True)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        rank, world_size = get_dist_info()
        if self._in_val and self._val_states is not None:
            # a best checkpoint saved during validation: the states that
            # training continues from are those validation started with
            states = self._val_states
        elif world_size == 1:
            states = [get_rng_state()]
        elif self._gathered is not None and \
                self._gathered[0] == runner.iter:
            states = self._gathered[1]
        else:
            # saved at a point where the other ranks could not be asked
            states = [get_rng_state()]
        checkpoint[KEY] = dict(rng_states=states, world_size=world_size)

    # ---------------------------------------------------------- validation
    def before_val(self, runner) -> None:
        self._in_val = True
        self._val_states = [get_rng_state()]
        if get_dist_info()[1] > 1:
            self._val_states = all_gather_object(self._val_states[0])

    def after_val(self, runner) -> None:
        self._in_val = False
        if self._val_states is not None:
            set_rng_state(self._val_states[get_dist_info()[0]])
        self._val_states = None

    # ------------------------------------------------------------ resuming
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta') or {}
        self._loaded = dict(
            epoch=meta.get('epoch'),
            iter=meta.get('iter'),
            saved=checkpoint.get(KEY))

    def _restorer(self, runner, saved: Optional[dict]):
        rank, world_size = get_dist_info()
        if saved is None:
            runner.logger.warning(
                '[ExactResumeHook] the checkpoint holds no random states '
                '(it was saved without this hook): training continues from '
                'the random states of a fresh start, and its random draws '
                '(drop path, augmentation) differ from an uninterrupted run')
            return lambda: None
        states = saved['rng_states']
        if len(states) != world_size and len(states) > 1:
            runner.logger.warning(
                f'[ExactResumeHook] the checkpoint holds the random states '
                f'of {len(states)} processes and this run has {world_size}: '
                'they are not restored')
            return lambda: None
        if rank >= len(states):
            runner.logger.warning(
                f'[ExactResumeHook] the checkpoint holds no random state '
                f'for rank {rank}: it is not restored')
            return lambda: None
        return lambda: set_rng_state(states[rank])

    def before_train(self, runner) -> None:
        loaded, self._loaded = self._loaded, None
        # only a resume (not load_from) sets the loop's counters from the
        # checkpoint
        if loaded is None or not runner.iter or \
                (loaded['epoch'], loaded['iter']) != (runner.epoch,
                                                      runner.iter):
            return
        restore = self._restorer(runner, loaded['saved'])
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop):
            # MMEngine fetches (and drops) `iter` batches, then trains
            loop.dataloader_iterator = _RestoreBeforeNext(
                loop.dataloader_iterator, runner.iter, restore)
            return
        if not isinstance(loop, ExactResumeEpochBasedTrainLoop):
            runner.logger.warning(
                f'[ExactResumeHook] {type(loop).__name__} is neither '
                'ExactResumeEpochBasedTrainLoop nor IterBasedTrainLoop: the '
                'random states are restored now, the trained batches of the '
                'interrupted epoch are trained again. For an exact resume '
                "set train_cfg=dict(type='ExactResumeEpochBasedTrainLoop', "
                '...)')
            restore()
            return
        length = len(loop.dataloader)
        done = runner.iter - runner.epoch * length
        if not 0 <= done <= length:
            runner.logger.warning(
                f'[ExactResumeHook] iteration {runner.iter} is not in epoch '
                f'{runner.epoch + 1} of {length} iterations (did the dataset '
                'or the batch size change?): the interrupted epoch starts '
                'again and the random states are not restored')
            return
        dataloader = loop.dataloader
        if runner.epoch > 0 and getattr(dataloader, 'persistent_workers',
                                        False) and dataloader.num_workers:
            runner.logger.warning(
                '[ExactResumeHook] the data workers are persistent: their '
                'random state (augmentation) continues from epoch to epoch '
                'and is not in the checkpoint, so from here on they draw '
                'other augmentations than an uninterrupted run would; set '
                'train_dataloader.persistent_workers=False for an exact '
                'resume')
        if done == 0:
            # the checkpoint ended an epoch: the states are restored right
            # before the next one starts
            self._restore_at_epoch = restore
            return
        runner.logger.info(
            f'[ExactResumeHook] resuming in the middle of epoch '
            f'{runner.epoch + 1}: loading and skipping its {done} trained '
            'batches')
        loop.skip_trained_batches(done, restore)

    def before_train_epoch(self, runner) -> None:
        restore, self._restore_at_epoch = self._restore_at_epoch, None
        if restore is not None:
            restore()
