"""What both converters promise (library and command line), tested on the
mini official files of the reference fixtures, one family per parameter."""
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mmboat.converters import (convert_boat_cswin_checkpoint,
                               convert_boat_swin_checkpoint)
from mmboat.models.backbones import BOATCSWinTransformer, BOATSwinTransformer
from mmboat.utils import CheckpointError, load_checkpoint_file
from tests.helpers import (REPO_ROOT, build_classifier, call_tool_main,
                           reference_arch, reference_fixture, rel_err,
                           run_classifier, run_tool)

TOOLS = REPO_ROOT / 'tools' / 'model_converters'

SWIN = SimpleNamespace(
    name='BOAT-Swin',
    plain='Swin',
    backbone=BOATSwinTransformer,
    convert=convert_boat_swin_checkpoint,
    script=TOOLS / 'boat_swin_to_mmboat.py',
    option='--arch',
    official='boat_swin_mini_official.pth',
    io='boat_swin_mini_io.pth',
    weights='model',  # where the official files keep their weights
    pickled='config',  # a pickled object of the official files
    backbone_line="arch={'embed_dims': 32",
    fsla=('.attnC.', '.norm4.'),  # official names of the FSLA weights
    # 3 FSLA blocks (stages 1-3) x (norm 2 + qkv 2 + proj 2 + get_v 2)
    num_fresh=24,
    fresh_in_meta='backbone.stages.0.blocks.1.fsla.qkv.weight',
    fresh_in_stdout='backbone.stages.2.blocks.1.fsla.get_v.bias',
    fresh_norm='backbone.stages.0.blocks.1.norm_fsla.weight',
    fresh_qkv='backbone.stages.0.blocks.1.fsla.qkv.weight',
    mapped={
        'layers.2.blocks.1.attn.qkv.weight':
        'backbone.stages.2.blocks.1.attn.w_msa.qkv.weight',
        'norm.weight': 'backbone.norm3.weight',
        'head.weight': 'head.fc.weight',
    },
    fsla_param='stages.2.blocks.1.fsla.get_v.weight',
    missing=('layers.1.blocks.1.attnC.proj.weight',
             'layers.2.downsample.reduction.weight'),
    # a minimal file of the family, for the other family's converter
    sample=lambda: {
        'model': {
            'patch_embed.proj.weight': torch.zeros(32, 3, 4, 4),
            'layers.0.blocks.0.norm1.weight': torch.zeros(32),
            'layers.0.blocks.1.attnC.qkv.weight': torch.zeros(96, 32),
        },
        'epoch': 1,
        'max_accuracy': 0.,
    })

CSWIN = SimpleNamespace(
    name='BOAT-CSWin',
    plain='CSWin',
    backbone=BOATCSWinTransformer,
    convert=convert_boat_cswin_checkpoint,
    script=TOOLS / 'boat_cswin_to_mmboat.py',
    option='--ema',
    official='boat_cswin_mini_official.pth',
    io='boat_cswin_mini_io.pth',
    weights='state_dict',
    pickled='args',
    backbone_line='arch=dict(embed_dims=32, depths=[1, 2, 2, 1]',
    fsla=('.content_attn.', '.norm3.'),
    # 4 FSLA blocks (block 0 of every stage) x (norm, qkv, proj, get_v) x 2
    num_fresh=32,
    fresh_in_meta='backbone.stages.3.blocks.0.fsla.get_v.weight',
    fresh_in_stdout='backbone.stages.2.blocks.0.fsla.get_v.bias',
    fresh_norm='backbone.stages.0.blocks.0.norm_fsla.weight',
    fresh_qkv='backbone.stages.1.blocks.0.fsla.qkv.weight',
    mapped={
        'stage3.1.qkv.weight': 'backbone.stages.2.blocks.1.attn.qkv.weight',
        'norm.weight': 'backbone.norm3.weight',
        'head.weight': 'head.fc.weight',
    },
    fsla_param='stages.2.blocks.0.fsla.get_v.weight',
    missing=('stage3.1.attns.0.get_v.weight',
             'stage2.0.content_attn.proj.bias'),
    sample=lambda: {
        'state_dict': {
            'stage1_conv_embed.0.weight': torch.zeros(32, 3, 7, 7),
            'stage1.0.qkv.weight': torch.zeros(96, 32),
        },
        'arch': 'CSWin_64_12211_tiny_224',
        'epoch': 1,
    })

OTHER = {'BOAT-Swin': CSWIN, 'BOAT-CSWin': SWIN}


@pytest.fixture(scope='module', params=[SWIN, CSWIN], ids=lambda c: c.name)
def case(request):
    return request.param


@pytest.fixture(scope='module')
def official(case):
    return reference_fixture(case.official)


@pytest.fixture(scope='module')
def io(case):
    return load_checkpoint_file(str(reference_fixture(case.io)))


@pytest.fixture(scope='module')
def converted(case, official, tmp_path_factory):
    """The official mini file converted through the command line."""
    dst = tmp_path_factory.mktemp('converted') / 'mini.pth'
    result = run_tool(case.script, official, dst)
    assert result.returncode == 0, result.stderr
    return dst, result.stdout


def plain_weights(case, official):
    """The fixture without its FSLA weights: an official Swin / CSWin
    file."""
    src = load_checkpoint_file(str(official))[case.weights]
    return {k: v for k, v in src.items() if not any(f in k for f in case.fsla)}


def test_help(case):
    result = run_tool(case.script, '--help')
    assert result.returncode == 0
    assert 'usage' in result.stdout and case.option in result.stdout


def test_float64_parity(case, converted, io, one_thread):
    dst, stdout = converted
    assert f'official {case.name} checkpoint' in stdout
    assert case.backbone_line in stdout
    ckpt = load_checkpoint_file(str(dst))
    assert ckpt['meta']['source'] == case.name.lower()
    assert ckpt['meta']['source_weights'] == case.weights
    model = build_classifier(case.backbone.__name__,
                             reference_arch(io['arch']),
                             io['arch']['num_classes'])
    result = model.load_state_dict(ckpt['state_dict'], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    logits, stage_outputs = run_classifier(model.double().eval(), io['input'])

    assert len(stage_outputs) == len(io['stage_outputs'])
    errors = {'logits': rel_err(logits, io['logits'])}
    for i, (out, ref) in enumerate(zip(stage_outputs, io['stage_outputs'])):
        assert out.shape == ref.shape
        errors[f'stage{i + 1}'] = rel_err(out, ref)
    print('relative errors:', errors)
    assert all(e <= 1e-6 for e in errors.values()), errors


def test_backbone_init_cfg(case, converted, io):
    """The converted file initialises the backbone alone."""
    dst, _ = converted
    model = case.backbone(
        arch=reference_arch(io['arch']),
        init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    model.init_weights()  # norm0..2 start fresh, everything else loads
    sd = load_checkpoint_file(str(dst))['state_dict']
    torch.testing.assert_close(
        model.get_parameter(case.fsla_param),
        sd[f'backbone.{case.fsla_param}'],
        rtol=0,
        atol=0)
    for k, v in model.state_dict().items():
        if not k.startswith(('norm0', 'norm1', 'norm2')):
            assert torch.equal(v, sd[f'backbone.{k}']), k


def test_plain_source(case, official, io, tmp_path):
    """An official Swin / CSWin file (no FSLA) becomes a BOAT
    initialisation."""
    plain = plain_weights(case, official)
    src = tmp_path / 'plain.pth'
    torch.save({case.weights: plain, 'epoch': 299}, src)
    dst = tmp_path / 'boat_from_plain.pth'
    assert call_tool_main(case.script, src, dst) == 0
    out = load_checkpoint_file(str(dst))
    meta, sd = out['meta'], out['state_dict']
    assert meta['source'] == case.plain.lower()
    assert meta['source_epoch'] == 299
    assert len(meta['fresh_keys']) == case.num_fresh
    assert case.fresh_in_meta in meta['fresh_keys']
    # every Swin / CSWin weight is mapped, unchanged
    for old, new in case.mapped.items():
        assert torch.equal(sd[new], plain[old]), old
    # fresh FSLA weights as in training from scratch, reproducible
    assert torch.equal(sd[case.fresh_norm], torch.ones(32))
    assert sd[case.fresh_qkv].std() < 0.05
    assert call_tool_main(case.script, src, dst) == 0
    again = load_checkpoint_file(str(dst))['state_dict']
    assert torch.equal(again[case.fresh_qkv], sd[case.fresh_qkv])
    model = build_classifier(case.backbone.__name__,
                             reference_arch(io['arch']), 10)
    model.load_state_dict(sd, strict=True)


def test_plain_source_cli_lists_fresh_weights(case, official, tmp_path,
                                              capsys):
    src = tmp_path / 'plain.pth'
    torch.save({case.weights: plain_weights(case, official)}, src)
    assert call_tool_main(case.script, src, tmp_path / 'out.pth') == 0
    stdout = capsys.readouterr().out
    assert f'official {case.plain} checkpoint' in stdout
    assert (f'{case.num_fresh} FSLA weights are not in the {case.plain} '
            'file and start fresh') in stdout
    assert case.fresh_in_stdout in stdout


def test_wrong_family(case, tmp_path):
    other = OTHER[case.name]
    src = tmp_path / 'other.pth'
    torch.save(other.sample(), src)
    code = call_tool_main(case.script, src, tmp_path / 'out.pth')
    assert f'{other.name} checkpoint' in str(code)
    assert f'not a {case.name}' in str(code)
    assert other.script.name in str(code)
    assert not (tmp_path / 'out.pth').exists()


def test_truncated_file(official, case, tmp_path):
    data = Path(official).read_bytes()
    src = tmp_path / 'truncated.pth'
    src.write_bytes(data[:len(data) // 2])
    code = call_tool_main(case.script, src, tmp_path / 'out.pth')
    assert isinstance(code, str) and 'truncated' in code  # no traceback
    assert not (tmp_path / 'out.pth').exists()


def test_missing_weights(case, official, tmp_path):
    ckpt = load_checkpoint_file(str(official))
    for k in case.missing:
        del ckpt[case.weights][k]
    del ckpt[case.pickled]  # its inert stand-in cannot be saved again
    src = tmp_path / 'incomplete.pth'
    torch.save(ckpt, src)
    code = call_tool_main(case.script, src, tmp_path / 'out.pth')
    assert 'missing weights (2)' in str(code)
    for k in case.missing:
        assert k in str(code)
    assert not (tmp_path / 'out.pth').exists()


def test_already_converted(case, converted, tmp_path):
    code = call_tool_main(case.script, converted[0], tmp_path / 'again.pth')
    assert 'already an mmboat checkpoint' in str(code)
    assert not (tmp_path / 'again.pth').exists()


def test_path_or_dict(case, official, tmp_path):
    """Both converters take a path or a loaded dict, and raise
    CheckpointError (a ValueError) for every refused file."""
    from_path = case.convert(str(official))
    from_dict = case.convert(load_checkpoint_file(str(official)))
    assert from_path['meta'] == from_dict['meta']
    assert from_path['meta']['num_classes'] == 10
    assert list(from_path['state_dict']) == list(from_dict['state_dict'])
    for k, v in from_path['state_dict'].items():
        assert torch.equal(v, from_dict['state_dict'][k]), k
    assert issubclass(CheckpointError, ValueError)
    with pytest.raises(CheckpointError, match='not found'):
        case.convert(str(tmp_path / 'absent.pth'))
    with pytest.raises(CheckpointError, match='expected a checkpoint'):
        case.convert([])
    with pytest.raises(CheckpointError, match=f'not a {case.name}'):
        case.convert(OTHER[case.name].sample())


def test_headless(case, official, io, tmp_path):
    """A file without a head converts (num_classes None) and initialises
    the backbone; half a head is refused."""
    weights = load_checkpoint_file(str(official))[case.weights]
    headless = {k: v for k, v in weights.items() if not k.startswith('head.')}
    converted = case.convert({case.weights: headless})
    assert converted['meta']['num_classes'] is None
    assert not any(k.startswith('head.') for k in converted['state_dict'])
    dst = tmp_path / 'headless.pth'
    torch.save(converted, dst)
    model = case.backbone(
        arch=reference_arch(io['arch']),
        init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    model.init_weights()
    with pytest.raises(
            CheckpointError,
            match=r'missing weights \(1\):\n  head\.weight\n'):
        case.convert(
            {case.weights: {
                **headless, 'head.bias': weights['head.bias']
            }})


class _Payload:
    """Unpickling this runs ``open(marker, 'w')``: it creates the file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), 'w')


def test_malicious_pickle_never_runs(case, official, tmp_path):
    ckpt = load_checkpoint_file(str(official))
    marker = tmp_path / 'pwned'
    ckpt[case.pickled] = _Payload(marker)
    src = tmp_path / 'malicious.pth'
    torch.save(ckpt, src)
    assert not marker.exists()
    assert call_tool_main(case.script, src, tmp_path / 'out.pth') == 0
    assert not marker.exists()
    assert (tmp_path / 'out.pth').exists()
    # control: an unrestricted load does run the payload
    torch.load(src, weights_only=False)
    assert marker.exists()


def test_destination_is_replaced_only_by_a_complete_file(
        case, official, tmp_path, monkeypatch):
    """The converted file is written next to the destination and renamed:
    a save that fails leaves an existing destination as it was and no
    temporary file behind; a save that succeeds replaces it."""
    from mmboat.converters import cli
    dst = tmp_path / 'out' / 'converted.pth'
    dst.parent.mkdir()
    dst.write_bytes(b'the previous file')
    save = torch.save

    def fail_halfway(obj, f):
        f.write(b'half a file')
        raise RuntimeError('No space left on device')

    monkeypatch.setattr(cli.torch, 'save', fail_halfway)
    code = call_tool_main(case.script, official, dst)
    assert 'cannot write' in str(code) and 'No space left' in str(code)
    assert dst.read_bytes() == b'the previous file'
    assert sorted(p.name for p in dst.parent.iterdir()) == ['converted.pth']
    monkeypatch.setattr(cli.torch, 'save', save)
    assert call_tool_main(case.script, official, dst) == 0
    assert sorted(p.name for p in dst.parent.iterdir()) == ['converted.pth']
    assert 'state_dict' in load_checkpoint_file(str(dst))
    umask = os.umask(0)
    os.umask(umask)
    assert dst.stat().st_mode & 0o777 == 0o666 & ~umask


def test_source_is_never_written(case, official, tmp_path):
    """Whatever the destination, the converter opens its source only for
    reading: a read-only source converts, and stays as it was."""
    src = tmp_path / official.name
    src.write_bytes(official.read_bytes())
    src.chmod(0o444)
    before = src.read_bytes()
    assert call_tool_main(case.script, src, tmp_path / 'new.pth') == 0
    assert src.read_bytes() == before
    assert call_tool_main(case.script, src, src) != 0
    assert src.read_bytes() == before


def test_each_family_is_described_once():
    """The backbones and the converters read their family's facts (name,
    presets, official prefixes, converter script, published files) from
    its one description in mmboat.families."""
    from mmboat.converters import CONVERTERS
    from mmboat.families import FAMILIES
    assert set(CONVERTERS) == set(FAMILIES) == {'boat-swin', 'boat-cswin'}
    for key, family in FAMILIES.items():
        backbone = family.backbone
        assert backbone.__name__ == family.backbone_type
        assert backbone.description is family
        assert backbone.family == family.name
        assert backbone.arch_zoo is family.arch_zoo
        assert CONVERTERS[key].family is family
    swin = BOATSwinTransformer(arch='small')
    assert (swin.converter, swin.official_prefixes) == (
        'tools/model_converters/boat_swin_to_mmboat.py', ('layers.',
                                                          'patch_embed.'))
    assert FAMILIES['boat-swin'].release(swin.arch) == ('BOAT-Swin-S',
                                                        'small.pth')
    cswin = BOATCSWinTransformer(
        arch=dict(BOATCSWinTransformer.arch_zoo['tiny'], embed_dims=32))
    assert FAMILIES['boat-cswin'].release(cswin.arch) is None
