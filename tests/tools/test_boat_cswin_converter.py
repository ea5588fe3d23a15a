from pathlib import Path

import pytest
import torch

from mmboat.utils import load_checkpoint_file
from tests.helpers import (REPO_ROOT, call_tool_main, reference_fixture,
                            run_tool)

CONVERTER = REPO_ROOT / 'tools' / 'model_converters' / \
    'boat_cswin_to_mmboat.py'


@pytest.fixture
def one_thread():
    """Float64 depthwise convolutions take the slow per-group path of
    PyTorch; with two OpenMP threads on two busy cores that path is ~100x
    slower than with one (measured: 24 s vs 1.3 s for the fixture model)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_converter(*args):
    return run_tool(CONVERTER, *args)


def converter_main(*args):
    """The CLI in-process: its exit code / message (SystemExit) or 0."""
    return call_tool_main(CONVERTER, *args)


def fixture_arch(io):
    a = io['arch']
    return dict(
        embed_dims=a['embed_dim'],
        depths=tuple(a['depth']),
        num_heads=tuple(a['num_heads']),
        split_sizes=tuple(a['split_size']))


def build_classifier(arch, num_classes):
    """An mmpretrain ImageClassifier around BOATCSWinTransformer."""
    pytest.importorskip('mmpretrain')
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    import mmboat.models  # noqa: F401 (registers the backbone)
    in_channels = arch['embed_dims'] * 2**(len(arch['depths']) - 1)
    cfg = dict(
        type='ImageClassifier',
        backbone=dict(
            type='BOATCSWinTransformer', arch=arch, out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=num_classes,
            in_channels=in_channels))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg)


def run_classifier(model, x):
    """Logits and the output of the last block of every stage."""
    stage_outputs = {}
    hooks = [
        stage.blocks[-1].register_forward_hook(
            lambda m, args, out, i=i: stage_outputs.__setitem__(i, out))
        for i, stage in enumerate(model.backbone.stages)
    ]
    with torch.no_grad():
        logits = model(x)
    for h in hooks:
        h.remove()
    return logits, [stage_outputs[i] for i in range(len(stage_outputs))]


def rel_err(out, ref):
    return ((out - ref).norm() / ref.norm()).item()


@pytest.fixture(scope='module')
def official():
    return reference_fixture('boat_cswin_mini_official.pth')


@pytest.fixture(scope='module')
def io():
    return load_checkpoint_file(
        str(reference_fixture('boat_cswin_mini_io.pth')))


@pytest.fixture(scope='module')
def converted(official, tmp_path_factory):
    """The official mini BOAT-CSWin converted through the CLI."""
    dst = tmp_path_factory.mktemp('converted') / 'boat_cswin_mini.pth'
    result = run_converter(official, dst)
    assert result.returncode == 0, result.stderr
    return dst, result.stdout


def test_help():
    result = run_converter('--help')
    assert result.returncode == 0
    assert 'usage' in result.stdout and '--ema' in result.stdout


def test_float64_parity(converted, io, one_thread):
    dst, stdout = converted
    assert 'official BOAT-CSWin checkpoint' in stdout
    ckpt = load_checkpoint_file(str(dst))
    assert ckpt['meta']['source'] == 'boat-cswin'
    assert ckpt['meta']['source_weights'] == 'state_dict'
    model = build_classifier(fixture_arch(io), io['arch']['num_classes'])
    result = model.load_state_dict(ckpt['state_dict'], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    logits, stage_outputs = run_classifier(model.double().eval(), io['input'])

    errors = {'logits': rel_err(logits, io['logits'])}
    for i, (out, ref) in enumerate(zip(stage_outputs, io['stage_outputs'])):
        assert out.shape == ref.shape
        errors[f'stage{i + 1}'] = rel_err(out, ref)
    print('relative errors:', errors)
    assert all(e <= 1e-6 for e in errors.values()), errors


def test_ema_weights(official, converted, io, tmp_path, capsys, one_thread):
    dst_ema = tmp_path / 'ema.pth'
    assert converter_main(official, dst_ema, '--ema') == 0
    assert "'state_dict_ema'" in capsys.readouterr().out
    src = load_checkpoint_file(str(official))
    plain = load_checkpoint_file(str(converted[0]))['state_dict']
    ema = load_checkpoint_file(str(dst_ema))
    assert ema['meta']['source_weights'] == 'state_dict_ema'
    ema = ema['state_dict']
    assert set(ema) == set(plain)
    key, official_key = 'backbone.stages.2.blocks.0.fsla.qkv.weight', \
        'stage3.0.content_attn.qkv.weight'
    assert torch.equal(ema[key], src['state_dict_ema'][official_key])
    assert not torch.equal(ema[key], plain[key])

    # the EMA model computes something else
    x = io['input'][:1, :, :224, :224]
    outputs = []
    for sd in (plain, ema):
        model = build_classifier(fixture_arch(io), 10)
        model.load_state_dict(sd, strict=True)
        outputs.append(run_classifier(model.double().eval(), x))
    assert rel_err(outputs[1][0], outputs[0][0]) > 1e-3
    for a, b in zip(outputs[0][1], outputs[1][1]):
        assert rel_err(b, a) > 1e-3


def test_backbone_init_cfg(converted, io):
    """The converted file initialises the backbone alone."""
    from mmboat.models.backbones import BOATCSWinTransformer
    dst, _ = converted
    model = BOATCSWinTransformer(
        arch=fixture_arch(io),
        init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    model.init_weights()  # norm0..2 start fresh, everything else loads
    sd = load_checkpoint_file(str(dst))['state_dict']
    for k, v in model.state_dict().items():
        if not k.startswith(('norm0', 'norm1', 'norm2')):
            assert torch.equal(v, sd[f'backbone.{k}']), k


def test_key_map(official, converted):
    src = load_checkpoint_file(str(official))['state_dict']
    sd = load_checkpoint_file(str(converted[0]))['state_dict']
    assert len(sd) == len(src)
    pairs = {
        'stage1_conv_embed.0.weight': 'backbone.patch_embed.proj.weight',
        'stage1_conv_embed.2.bias': 'backbone.patch_embed.norm.bias',
        'stage2.1.norm1.weight': 'backbone.stages.1.blocks.1.norm1.weight',
        'stage2.1.qkv.weight': 'backbone.stages.1.blocks.1.attn.qkv.weight',
        'stage2.1.proj.bias': 'backbone.stages.1.blocks.1.attn.proj.bias',
        'stage2.1.attns.1.get_v.weight':
        'backbone.stages.1.blocks.1.attn.lepe.1.weight',
        'stage4.0.attns.0.get_v.bias':
        'backbone.stages.3.blocks.0.attn.lepe.0.bias',
        'stage3.0.norm3.weight': 'backbone.stages.2.blocks.0.norm_fsla.weight',
        'stage3.0.content_attn.get_v.weight':
        'backbone.stages.2.blocks.0.fsla.get_v.weight',
        'stage3.1.norm2.bias': 'backbone.stages.2.blocks.1.norm2.bias',
        'stage3.1.mlp.fc2.weight': 'backbone.stages.2.blocks.1.ffn.fc2.weight',
        'merge3.conv.weight': 'backbone.stages.2.downsample.conv.weight',
        'merge1.norm.bias': 'backbone.stages.0.downsample.norm.bias',
        'norm.weight': 'backbone.norm3.weight',
        'head.weight': 'head.fc.weight',
        'head.bias': 'head.fc.bias',
    }
    for old, new in pairs.items():
        assert torch.equal(sd[new], src[old]), old


def cswin_weights(official):
    """The fixture without its FSLA weights: an official CSWin file."""
    src = load_checkpoint_file(str(official))['state_dict']
    return {
        k: v
        for k, v in src.items() if '.content_attn.' not in k and
        '.norm3.' not in k
    }


def test_cswin_source(official, io, tmp_path):
    """An official CSWin file (no FSLA) becomes a BOAT-CSWin initialisation."""
    cswin = cswin_weights(official)
    src = tmp_path / 'cswin_mini.pth.tar'
    torch.save({'state_dict': cswin, 'epoch': 299, 'arch': 'CSWin'}, src)
    dst = tmp_path / 'boat_from_cswin.pth'
    assert converter_main(src, dst) == 0
    out = load_checkpoint_file(str(dst))
    meta, sd = out['meta'], out['state_dict']
    assert meta['source'] == 'cswin'
    # 4 FSLA blocks (block 0 of every stage) x (norm, qkv, proj, get_v) x 2
    assert len(meta['fresh_keys']) == 32
    assert 'backbone.stages.3.blocks.0.fsla.get_v.weight' in meta['fresh_keys']
    assert torch.equal(sd['backbone.stages.2.blocks.1.attn.qkv.weight'],
                       cswin['stage3.1.qkv.weight'])
    assert torch.equal(sd['backbone.norm3.weight'], cswin['norm.weight'])
    # fresh FSLA weights as in training from scratch, reproducible
    assert torch.equal(sd['backbone.stages.0.blocks.0.norm_fsla.weight'],
                       torch.ones(32))
    assert sd['backbone.stages.1.blocks.0.fsla.qkv.weight'].std() < 0.05
    again = load_checkpoint_file(str(dst))['state_dict']
    assert converter_main(src, dst) == 0
    assert torch.equal(again['backbone.stages.1.blocks.0.fsla.qkv.weight'],
                       sd['backbone.stages.1.blocks.0.fsla.qkv.weight'])
    model = build_classifier(fixture_arch(io), 10)
    model.load_state_dict(sd, strict=True)


def test_cswin_source_cli_lists_fresh_weights(official, tmp_path, capsys):
    src = tmp_path / 'cswin_mini.pth.tar'
    torch.save({'state_dict': cswin_weights(official)}, src)
    assert converter_main(src, tmp_path / 'out.pth') == 0
    stdout = capsys.readouterr().out
    assert 'official CSWin checkpoint' in stdout
    assert '32 FSLA weights are not in the CSWin file and start fresh' in \
        stdout
    assert 'backbone.stages.2.blocks.0.fsla.get_v.bias' in stdout


def test_boat_swin_file_rejected(tmp_path):
    src = tmp_path / 'boat_swin.pth'
    torch.save(
        {
            'model': {
                'patch_embed.proj.weight': torch.zeros(32, 3, 4, 4),
                'layers.0.blocks.0.norm1.weight': torch.zeros(32),
                'layers.0.blocks.1.attnC.qkv.weight': torch.zeros(96, 32),
            },
            'epoch': 1,
            'max_accuracy': 0.,
        }, src)
    code = converter_main(src, tmp_path / 'out.pth')
    assert 'BOAT-Swin checkpoint' in str(code)
    assert 'boat_swin_to_mmboat.py' in str(code)
    assert not (tmp_path / 'out.pth').exists()


def test_truncated_file(official, tmp_path):
    data = Path(official).read_bytes()
    src = tmp_path / 'truncated.pth.tar'
    src.write_bytes(data[:len(data) // 2])
    code = converter_main(src, tmp_path / 'out.pth')  # exits, no traceback
    assert isinstance(code, str) and 'truncated' in code
    assert not (tmp_path / 'out.pth').exists()


def test_missing_weights(official, tmp_path):
    ckpt = load_checkpoint_file(str(official))
    del ckpt['state_dict']['stage3.1.attns.0.get_v.weight']
    del ckpt['state_dict']['stage2.0.content_attn.proj.bias']
    del ckpt['args']
    src = tmp_path / 'incomplete.pth.tar'
    torch.save(ckpt, src)
    code = converter_main(src, tmp_path / 'out.pth')
    assert 'missing weights' in str(code)
    assert 'stage3.1.attns.0.get_v.weight' in str(code)
    assert 'stage2.0.content_attn.proj.bias' in str(code)
    assert not (tmp_path / 'out.pth').exists()


def test_other_format_errors(official, tmp_path):
    converted = tmp_path / 'converted.pth'
    assert converter_main(official, converted) == 0
    assert 'already an mmboat checkpoint' in str(
        converter_main(converted, tmp_path / 'again.pth'))

    ckpt = load_checkpoint_file(str(official))
    only_ema = tmp_path / 'only_ema.pth'
    torch.save({'state_dict_ema': ckpt['state_dict_ema']}, only_ema)
    assert '--ema' in str(converter_main(only_ema, tmp_path / 'out.pth'))
    no_ema = tmp_path / 'no_ema.pth'
    torch.save({'state_dict': ckpt['state_dict']}, no_ema)
    assert "has none" in str(
        converter_main(no_ema, tmp_path / 'out.pth', '--ema'))

    extra = dict(ckpt['state_dict'])
    extra['stage2.1.content_attn.proj.bias'] = torch.zeros(64)  # odd block
    odd = tmp_path / 'odd.pth'
    torch.save({'state_dict': extra}, odd)
    assert 'unexpected weights: [\'stage2.1.content_attn.proj.bias\']' in \
        str(converter_main(odd, tmp_path / 'out.pth'))


class _Payload:
    """Unpickling this runs ``open(marker, 'w')``: it creates the file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), 'w')


def test_malicious_pickle_never_runs(official, tmp_path):
    ckpt = load_checkpoint_file(str(official))
    marker = tmp_path / 'pwned'
    ckpt['args'] = _Payload(marker)
    src = tmp_path / 'malicious.pth.tar'
    torch.save(ckpt, src)
    assert not marker.exists()
    assert converter_main(src, tmp_path / 'out.pth') == 0
    assert not marker.exists()
    assert (tmp_path / 'out.pth').exists()
    # control: an unrestricted load does run the payload
    torch.load(src, weights_only=False)
    assert marker.exists()
