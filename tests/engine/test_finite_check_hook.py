"""FiniteCheckHook: a run whose training loss, or whose validation / test
outputs or metrics, are NaN or Inf says so in its log; a finite run logs
nothing. A tiny model through MMEngine's own Runner (CPU, seconds)."""
import logging

import pytest
import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.registry import METRICS, MODELS
from mmengine.runner import Runner
from mmengine.structures import BaseDataElement
from torch.utils.data import Dataset

import mmboat  # noqa: F401  (registers FiniteCheckHook)
from mmboat.engine import FiniteCheckHook


class _Points(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.full((2, ), float(i)), label=i % 2)


@MODELS.register_module(force=True)
class _TinyNaNModel(BaseModel):
    """A linear model; ``poison`` makes its weight NaN (as a diverged run
    would) from the start of training, or only for evaluation."""

    def __init__(self, poison: str = ''):
        super().__init__()
        self.fc = torch.nn.Linear(2, 2)
        self.poison = poison

    def forward(self, inputs, label=None, mode='tensor'):
        x = torch.stack(inputs) if isinstance(inputs, list) else inputs
        if self.poison == 'train' and mode == 'loss':
            with torch.no_grad():
                self.fc.weight.fill_(float('nan'))
        scores = self.fc(x.float())
        if self.poison == 'eval' and mode == 'predict':
            scores = scores * float('nan')
        if mode == 'loss':
            target = torch.as_tensor(label)
            return dict(loss=torch.nn.functional.cross_entropy(scores, target))
        return [BaseDataElement(pred_score=s) for s in scores]


@METRICS.register_module(force=True)
class _MeanScore(BaseMetric):
    """The mean predicted score: NaN when the scores are."""

    def process(self, data_batch, data_samples):
        self.results += [float(s['pred_score'].mean()) for s in data_samples]

    def compute_metrics(self, results):
        return dict(mean_score=sum(results) / len(results))


def _run(tmp_path, poison: str, train: bool):
    loader = dict(
        dataset=_Points(),
        sampler=dict(type='DefaultSampler', shuffle=False),
        batch_size=4,
        num_workers=0)
    runner = Runner(
        model=dict(type='_TinyNaNModel', poison=poison),
        work_dir=str(tmp_path),
        train_dataloader=loader if train else None,
        train_cfg=dict(by_epoch=True, max_epochs=1, val_interval=1)
        if train else None,
        optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=0.1)) if train else None,
        val_dataloader=loader if train else None,
        val_cfg=dict() if train else None,
        val_evaluator=dict(type='_MeanScore') if train else None,
        test_dataloader=None if train else loader,
        test_cfg=None if train else dict(),
        test_evaluator=None if train else dict(type='_MeanScore'),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(type='CheckpointHook', interval=100),
            finite_check=dict(type='FiniteCheckHook')),
        experiment_name=f'finite_{tmp_path.name}',
        default_scope=None,  # leave the default scope of other tests alone
        log_level='INFO')
    errors = []

    class Catch(logging.Handler):

        def emit(self, record):
            if record.levelno >= logging.ERROR:
                errors.append(record.getMessage())

    handler = Catch()
    runner.logger.addHandler(handler)
    try:
        runner.train() if train else runner.test()
    finally:
        runner.logger.removeHandler(handler)
    return [e for e in errors if 'FiniteCheckHook' in e]


def test_finite_run_logs_nothing(tmp_path):
    assert _run(tmp_path, '', train=True) == []


def test_nan_training_loss_and_validation_are_logged(tmp_path):
    errors = _run(tmp_path, 'train', train=True)
    text = '\n'.join(errors)
    assert 'the training loss is NaN or Inf at iteration 1 (epoch 1): ' \
        'loss=nan' in text, text
    assert 'Lower the learning rate' in text
    assert 'epoch 1: the training loss was NaN or Inf at 2 check(s)' in text
    assert 'validation after epoch 1, iteration 2: the outputs of 2 of 2 ' \
        'batches hold NaN or Inf (pred_score) and the metrics mean_score ' \
        'are NaN or Inf' in text, text


def test_nan_test_outputs_are_logged(tmp_path):
    errors = _run(tmp_path, 'eval', train=False)
    assert len(errors) == 1, errors
    assert errors[0].startswith(
        '[FiniteCheckHook] test: the outputs of 2 of 2 batches hold NaN or '
        'Inf (pred_score) and the metrics mean_score are NaN or Inf; the '
        'metrics of this test are meaningless'), errors[0]


def test_interval_is_checked():
    with pytest.raises(ValueError, match='interval=0 is not allowed'):
        FiniteCheckHook(interval=0)


def test_configs_declare_it():
    """mmboat's configs (and so the tiny ones, which inherit them) declare
    the hook beside SafeCheckpointHook."""
    from mmengine.config import Config

    from tests.helpers import REPO_ROOT
    for config in ('configs/tiny/boat-swin-nano_tiny-shapes.py',
                   'configs/boat_cswin/mask-rcnn_boat-cswin-t_fpn_1x_coco.py'):
        cfg = Config.fromfile(str(REPO_ROOT / config))
        assert cfg.default_hooks.finite_check.type == 'FiniteCheckHook'
