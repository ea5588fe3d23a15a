"""Say so when a run goes NaN: the training loss, the outputs of validation
and test, and their metrics.

A model whose weights hold NaN or Inf (a diverged run, an fp16 overflow)
trains on with a loss of ``nan`` and evaluates to an accuracy of 0 or a
mAP of -1 without a word. :class:`FiniteCheckHook` logs an error that
names what is not finite, where, and what to do:

- training: the first iteration whose loss (or one of its terms) is NaN or
  Inf, then, at the end of each epoch that had any, how many iterations;
- validation and test: how many batches gave outputs (predicted scores,
  logits, boxes...) that hold NaN or Inf, and the metrics that are NaN.

Outputs are checked on their device and the result is read once per
validation or test, at its end: no host synchronisation per batch. The
loss is read once per ``interval`` training iterations (MMEngine's logger
already reads it every iteration). The hook changes nothing in the run.

mmboat's configs declare it as a default hook::

    default_hooks = dict(finite_check=dict(type='FiniteCheckHook'))
"""
import math
import numbers
from typing import List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.structures import BaseDataElement

#: what to do when the weights went non-finite in training
DIVERGED_FIX = (
    'Lower the learning rate (optim_wrapper.optimizer.lr), clip the '
    'gradients (optim_wrapper.clip_grad=dict(max_norm=1.0)) or, with '
    'float16 AMP, use bfloat16 (optim_wrapper.dtype=\'bfloat16\'); then '
    'resume from a checkpoint saved before it happened')


def _tensors(obj, name: str = '', depth: int = 0):
    """(name, tensor) of the floating tensors of a model output: data
    samples (their prediction fields, not ``gt_*``), dicts, lists."""
    if depth > 4:
        return
    if torch.is_tensor(obj):
        if obj.is_floating_point() or obj.is_complex():
            yield name, obj
    elif isinstance(obj, BaseDataElement):
        for key, value in obj.items():
            if not key.startswith(('gt_', 'ignored_')):
                yield from _tensors(value, f'{name}.{key}'.lstrip('.'),
                                    depth + 1)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _tensors(value, f'{name}.{key}'.lstrip('.'), depth + 1)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _tensors(value, name, depth + 1)


def _not_finite(value) -> bool:
    """Whether a metric value is a NaN or an Inf."""
    if torch.is_tensor(value):
        return value.numel() > 0 and not bool(torch.isfinite(value).all())
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return not math.isfinite(value)
    return False


@HOOKS.register_module()
class FiniteCheckHook(Hook):
    """Log an error when the training loss, the outputs of validation or
    test, or their metrics are NaN or Inf (see the module docstring).

    Args:
        interval (int): read the training loss every ``interval``
            iterations (a flag accumulated on the device covers the
            iterations between). Default: 1.
    """

    priority = 'BELOW_NORMAL'

    def __init__(self, interval: int = 1):
        if isinstance(interval,
                      bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f'FiniteCheckHook: interval={interval!r} is not '
                             'allowed: it must be an int >= 1')
        self.interval = interval
        self._loss_flag: Optional[torch.Tensor] = None
        self._loss_names: set = set()
        self._bad_iters = 0
        self._reported = False
        self._eval: dict = {}

    # ------------------------------------------------------------ training
    def before_train_epoch(self, runner) -> None:
        self._bad_iters = 0

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if not isinstance(outputs, dict):
            return
        flag = self._loss_flag
        for name, value in outputs.items():
            if torch.is_tensor(value) and 'loss' in name and \
                    value.is_floating_point():
                bad = ~torch.isfinite(value).all()
                flag = bad if flag is None else flag | bad
        self._loss_flag = flag
        if flag is None or not self.every_n_train_iters(runner, self.interval):
            return
        self._loss_flag = None
        if not bool(flag):
            return
        self._bad_iters += 1
        names = sorted(f'{k}={float(v):.4g}' for k, v in outputs.items()
                       if torch.is_tensor(v) and 'loss' in k and v.numel() == 1
                       and not bool(torch.isfinite(v)))
        if not self._reported:
            self._reported = True
            where = f'iteration {runner.iter + 1}' if self.interval == 1 \
                else f'the {self.interval} iterations up to {runner.iter + 1}'
            runner.logger.error(
                f'[FiniteCheckHook] the training loss is NaN or Inf at '
                f'{where} (epoch {runner.epoch + 1})'
                f'{": " + ", ".join(names) if names else ""}: the run has '
                f'diverged and its weights are likely NaN. {DIVERGED_FIX}.')

    def after_train_epoch(self, runner) -> None:
        if self._bad_iters:
            runner.logger.error(
                f'[FiniteCheckHook] epoch {runner.epoch + 1}: the training '
                'loss '
                f'was NaN or Inf at {self._bad_iters} check(s) (every '
                f'{self.interval} iteration(s)). {DIVERGED_FIX}.')

    # ---------------------------------------------------- validation, test
    def _start(self) -> None:
        self._eval = dict(flag=None, bad=None, batches=0, names=set())

    def _check_outputs(self, outputs) -> None:
        if not self._eval:
            self._start()
        batch_bad = None
        for name, tensor in _tensors(outputs):
            bad = ~torch.isfinite(tensor).all()
            batch_bad = bad if batch_bad is None else batch_bad | bad
            self._eval['names'].add(name)
        self._eval['batches'] += 1
        if batch_bad is not None:
            count = batch_bad.to(torch.int64)
            self._eval['bad'] = count if self._eval['bad'] is None else \
                self._eval['bad'] + count

    def _report(self, runner, stage: str, metrics: Optional[dict]) -> None:
        bad = self._eval.get('bad')
        bad_batches = 0 if bad is None else int(bad)  # the one read
        nan_metrics: List[str] = sorted(k for k, v in (metrics or {}).items()
                                        if _not_finite(v))
        if not bad_batches and not nan_metrics:
            return
        what = []
        if bad_batches:
            fields = ', '.join(sorted(self._eval['names'])[:5])
            what.append(f'the outputs of {bad_batches} of '
                        f'{self._eval["batches"]} batches hold NaN or Inf '
                        f'({fields})')
        self._eval = {}
        if nan_metrics:
            what.append(f'the metrics {", ".join(nan_metrics)} are NaN or '
                        'Inf')
        when = f' after epoch {runner.epoch}, iteration {runner.iter}' \
            if stage == 'validation' else ''
        fix = (f'the weights are likely NaN or Inf: training diverged. '
               f'{DIVERGED_FIX}' if stage == 'validation' else
               'the weights of the checkpoint, or the model run in float16, '
               'give NaN or Inf: check the checkpoint (mmboat refuses files '
               'with NaN or Inf weights) and run in float32 or bfloat16')
        runner.logger.error(f'[FiniteCheckHook] {stage}{when}: ' +
                            ' and '.join(what) +
                            f'; the metrics of this {stage} are meaningless: '
                            f'{fix}.')

    def before_val_epoch(self, runner) -> None:
        self._start()

    def after_val_iter(self,
                       runner,
                       batch_idx: int,
                       data_batch=None,
                       outputs=None) -> None:
        self._check_outputs(outputs)

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        self._report(runner, 'validation', metrics)

    def before_test_epoch(self, runner) -> None:
        self._start()

    def after_test_iter(self,
                        runner,
                        batch_idx: int,
                        data_batch=None,
                        outputs=None) -> None:
        self._check_outputs(outputs)

    def after_test_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        self._report(runner, 'test', metrics)
