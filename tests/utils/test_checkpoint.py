"""load_checkpoint_file: plain data comes back, foreign classes become inert
OpaqueObjects and nothing from the file runs. load_backbone_weights: a
missing pretrained file names the converter command that makes it."""
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from mmboat.utils import CheckpointError, OpaqueObject, load_checkpoint_file


class Payload:
    marker = None

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_plain_data_round_trips(tmp_path):
    data = {
        'w': torch.arange(4.),
        'arr': np.arange(3.),
        'scalar': np.float64(2.5),
        'dtype': np.dtype('f4'),
        'bytes': b'abc',
        'set': {1, 2}
    }
    torch.save(data, tmp_path / 'ok.pth')
    out = load_checkpoint_file(str(tmp_path / 'ok.pth'))
    assert torch.equal(out['w'], data['w'])
    np.testing.assert_array_equal(out['arr'], data['arr'])
    assert out['scalar'] == 2.5 and out['dtype'] == np.float32
    assert out['bytes'] == b'abc' and out['set'] == {1, 2}


def test_foreign_objects_are_inert(tmp_path):
    Payload.marker = str(tmp_path / 'ran')
    evil = {'state_dict': {'w': torch.zeros(1)}, 'x': Payload()}
    torch.save(evil, tmp_path / 'evil.pth')
    out = load_checkpoint_file(str(tmp_path / 'evil.pth'))
    assert isinstance(out['x'], OpaqueObject)
    assert 'system' in repr(out['x'])
    assert not (tmp_path / 'ran').exists()


def test_truncated_and_missing_files(tmp_path):
    torch.save({'w': torch.zeros(1000)}, tmp_path / 'full.pth')
    data = (tmp_path / 'full.pth').read_bytes()
    (tmp_path / 'cut.pth').write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        load_checkpoint_file(str(tmp_path / 'cut.pth'))
    with pytest.raises(CheckpointError, match='not found'):
        load_checkpoint_file(str(tmp_path / 'nope.pth'))


REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    'config,command', [
        ('boat_swin/mask-rcnn_boat-swin-s_fpn_1x_coco.py',
         'python tools/model_converters/boat_swin_to_mmboat.py small.pth '
         'checkpoints/boat-swin-s_in1k_mmboat.pth'),
        ('boat_cswin/upernet_boat-cswin-t_8xb2-160k_ade20k-512x512.py',
         'python tools/model_converters/boat_cswin_to_mmboat.py '
         'cswin_tiny.pth.tar checkpoints/boat-cswin-t_in1k_mmboat.pth'),
    ],
    ids=['boat-swin-s', 'boat-cswin-t'])
def test_missing_pretrained_file_names_its_converter_command(
        config, command, tmp_path, monkeypatch):
    """A det / seg config whose converted ImageNet file is absent stops at
    init_weights with the command that makes the file."""
    from mmengine.config import Config
    from mmengine.registry import MODELS

    import mmboat  # noqa: F401 (registers the backbones)
    cfg = Config.fromfile(str(REPO_ROOT / 'configs' / config))
    backbone = MODELS.build(cfg.model.backbone)
    monkeypatch.chdir(tmp_path)  # no checkpoints/ folder here
    with pytest.raises(CheckpointError) as error:
        backbone.init_weights()
    message = str(error.value)
    target = cfg.model.backbone.init_cfg.checkpoint
    assert message.startswith(f'pretrained checkpoint {target} of ')
    assert f'not found (looked for {tmp_path / target})' in message
    assert f'\n    {command}\n' in message


def test_missing_file_command_for_an_unpublished_arch_works(tmp_path):
    """For an architecture without a release the message asks for a source
    file of that architecture; following it with one makes a loadable file.
    """
    from mmboat.models.backbones import BOATSwinTransformer
    source = (
        REPO_ROOT.parent / 'shared' / 'fixtures' / 'boat-reference' /
        'boat_swin_mini_official.pth')
    if not source.is_file():
        pytest.skip(f'reference fixture {source} is absent')
    target = str(tmp_path / 'mini_mmboat.pth')
    backbone = BOATSwinTransformer(
        arch=dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8)),
        init_cfg=dict(type='Pretrained', checkpoint=target))
    with pytest.raises(CheckpointError) as error:
        backbone.init_weights()
    message = str(error.value)
    assert 'an official checkpoint of this architecture (SRC.pth)' in message
    command = next(line.split() for line in message.splitlines()
                   if line.startswith('    python '))
    assert command[1:] == [
        'tools/model_converters/boat_swin_to_mmboat.py', 'SRC.pth', target
    ]
    spec = importlib.util.spec_from_file_location('converter',
                                                  REPO_ROOT / command[1])
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)
    converter.main([str(source), target])
    backbone.init_weights()
    assert backbone.is_init


def test_shipped_scheme_and_init_cfg_prefix(tmp_path, monkeypatch):
    """``mmboat://NAME`` is a file of the package's checkpoints/ folder,
    from any working directory; ``prefix`` selects and strips keys as in
    MMEngine's PretrainedInit, and a prefix the file lacks is refused."""
    from mmboat.models.backbones import BOATSwinTransformer
    from mmboat.utils import checkpoint as checkpoint_module
    arch = dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1))
    source = BOATSwinTransformer(arch=arch)
    source.init_weights()
    shipped = tmp_path / 'shipped'
    (shipped / 'tiny').mkdir(parents=True)
    torch.save(
        dict(state_dict={
            f'model.encoder.{k}': v
            for k, v in source.state_dict().items()
        }), shipped / 'tiny' / 'b.pth')
    monkeypatch.setattr(checkpoint_module, 'SHIPPED_DIR', str(shipped))
    assert checkpoint_module.resolve_checkpoint_path(
        'mmboat://tiny/b.pth') == str(shipped / 'tiny' / 'b.pth')
    assert checkpoint_module.resolve_checkpoint_path('a/b.pth') == 'a/b.pth'
    monkeypatch.chdir(tmp_path)

    target = BOATSwinTransformer(
        arch=arch,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='mmboat://tiny/b.pth',
            prefix='model.encoder.'))
    target.init_weights()
    for k, v in source.state_dict().items():
        assert torch.equal(target.state_dict()[k], v), k

    target.init_cfg['prefix'] = 'backbone.'
    with pytest.raises(
            CheckpointError,
            match="no weights under init_cfg's prefix "
            "'backbone.'") as error:
        target.init_weights()
    assert 'model.encoder.' in str(error.value)
    target.init_cfg = dict(
        type='Pretrained', checkpoint='mmboat://tiny/none.pth')
    with pytest.raises(CheckpointError, match='not found'):
        target.init_weights()


def test_checkpoint_formats_are_those_of_the_converters(tmp_path):
    """mmboat.utils knows no format: the converters' format detection is
    installed by ``import mmboat``; the base names nothing and checks no
    model."""
    import mmboat  # noqa: F401
    from mmboat.converters import OFFICIAL_FORMATS
    from mmboat.models.backbones import BOATSwinTransformer
    from mmboat.utils import (CheckpointFormats, check_model_fits,
                              use_checkpoint_formats)
    from mmboat.utils.checkpoint import checkpoint_formats
    assert checkpoint_formats() is OFFICIAL_FORMATS
    arch = dict(embed_dims=16, depths=(1, 1), num_heads=(1, 2))
    model = torch.nn.ModuleDict(
        dict(backbone=BOATSwinTransformer(arch=arch, out_indices=(1, ))))
    official = {'model': {'layers.0.blocks.0.norm1.weight': torch.zeros(1)}}
    assert OFFICIAL_FORMATS.checks(model['backbone'])
    assert not OFFICIAL_FORMATS.checks(model)
    assert OFFICIAL_FORMATS.is_official(official)
    with pytest.raises(CheckpointError, match='boat_swin_to_mmboat.py'):
        check_model_fits(model, official, 'tiny.pth')
    base = CheckpointFormats()
    assert not base.checks(model['backbone'])
    assert base.describe(official, 'tiny.pth') == ''
    try:
        use_checkpoint_formats(base)
        check_model_fits(model, official, 'tiny.pth')  # not checked
    finally:
        use_checkpoint_formats(OFFICIAL_FORMATS)
