"""The checks the tools run on a config before any work
(mmboat/utils/config_checks.py): misspelt ``--cfg-options`` keys and
datasets that are not on disk. (The command lines: the rows of
tests/test_bad_inputs.py.)"""
import pytest
from mmengine.config import Config

from mmboat.utils.config_checks import (ConfigOptionError, DataNotFoundError,
                                        check_cfg_options, check_data)

CFG = Config(
    dict(
        train_cfg=dict(max_epochs=12, val_interval=1),
        model=dict(backbone=dict(type='X', drop_path_rate=0.1)),
        train_pipeline=[dict(type='Load'),
                        dict(type='Flip', prob=0.5)],
        randomness=dict(seed=None)))


@pytest.mark.parametrize(
    'key, guess',
    [('train_cfg.max_epoch', 'train_cfg.max_epochs'),
     ('train_cfgs.max_epochs', 'train_cfg'),
     ('model.backbone.drop_path_rat', 'model.backbone.drop_path_rate'),
     ('train_pipeline.1.prb', 'train_pipeline.1.prob')])
def test_misspelt_keys_are_refused(key, guess):
    with pytest.raises(ConfigOptionError, match=f'did you mean {guess}'):
        check_cfg_options(CFG, {key: 1})


@pytest.mark.parametrize('key', [
    'train_cfg.max_epochs', 'model.backbone.init_cfg', 'randomness.seed',
    'randomness.deterministic', 'load_from', 'auto_scale_lr.enable',
    'train_pipeline.1.direction', 'model.backbone._delete_'
])
def test_new_and_existing_keys_pass(key):
    check_cfg_options(CFG, {key: 1})


def _data_cfg(root, **dataset):
    return Config(
        dict(
            default_scope='mmdet',
            test_dataloader=dict(dataset=dict(data_root=str(root), **dataset)),
            test_evaluator=dict(
                type='CocoMetric', ann_file=str(root / 'ann.json'))))


def test_data_present(tmp_path):
    (tmp_path / 'images').mkdir()
    (tmp_path / 'ann.json').write_text('{}')
    check_data(
        _data_cfg(
            tmp_path, ann_file='ann.json', data_prefix=dict(img='images/')),
        ['test_dataloader'])


def test_data_missing_names_the_path_and_the_guide(tmp_path):
    (tmp_path / 'ann.json').write_text('{}')
    cfg = _data_cfg(
        tmp_path, ann_file='ann.json', data_prefix=dict(img='images/'))
    with pytest.raises(DataNotFoundError) as e:
        check_data(cfg, ['test_dataloader'])
    message = str(e.value)
    assert f'{tmp_path}/images/ does not exist' in message
    assert 'mmdetection.readthedocs.io' in message
    assert '--cfg-options test_dataloader.dataset.data_root=' in message


def test_wrapped_datasets_and_evaluator_files(tmp_path):
    (tmp_path / 'images').mkdir()
    cfg = _data_cfg(tmp_path)
    cfg.test_dataloader.dataset = dict(
        type='RepeatDataset',
        dataset=dict(data_root=str(tmp_path), data_prefix='absent'))
    with pytest.raises(DataNotFoundError, match='absent does not exist'):
        check_data(cfg, ['test_dataloader'])
    cfg.test_dataloader.dataset.dataset.data_prefix = 'images'
    with pytest.raises(
            DataNotFoundError,
            match='the data of test_evaluator is missing: .*ann.json'):
        check_data(cfg, ['test_dataloader'])


def test_tiny_data_gives_the_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = Config(
        dict(
            test_dataloader=dict(
                dataset=dict(
                    data_root='data/tiny_shapes/ade/',
                    data_prefix=dict(img_path='images/validation')))))
    with pytest.raises(DataNotFoundError) as e:
        check_data(cfg, ['test_dataloader'])
    assert 'make_tiny_datasets.py --out-dir data/tiny_shapes --tasks seg' \
        in str(e.value)
