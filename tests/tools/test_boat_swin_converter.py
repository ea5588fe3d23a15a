from pathlib import Path

import pytest
import torch

from mmboat.utils import load_checkpoint_file
from tests.helpers import (REPO_ROOT, call_tool_main, reference_fixture,
                            run_tool)

CONVERTER = REPO_ROOT / 'tools' / 'model_converters' / 'boat_swin_to_mmboat.py'


def run_converter(*args):
    return run_tool(CONVERTER, *args)


def converter_main(*args):
    """The CLI in-process: its exit code / message (SystemExit) or 0."""
    return call_tool_main(CONVERTER, *args)


def build_classifier(arch, num_classes):
    """An mmpretrain ImageClassifier around BOATSwinTransformer."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    import mmboat.models  # noqa: F401 (registers the backbone)
    in_channels = arch['embed_dims'] * 2**(len(arch['depths']) - 1)
    cfg = dict(
        type='ImageClassifier',
        backbone=dict(
            type='BOATSwinTransformer', arch=arch, out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=num_classes,
            in_channels=in_channels))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg)


def fixture_arch(io):
    a = io['arch']
    return dict(
        embed_dims=a['embed_dim'],
        depths=tuple(a['depths']),
        num_heads=tuple(a['num_heads']))


@pytest.fixture(scope='module')
def official():
    return reference_fixture('boat_swin_mini_official.pth')


@pytest.fixture(scope='module')
def converted(official, tmp_path_factory):
    """The official mini BOAT-Swin converted through the CLI."""
    dst = tmp_path_factory.mktemp('converted') / 'boat_swin_mini.pth'
    result = run_converter(official, dst)
    assert result.returncode == 0, result.stderr
    return dst, result.stdout


def test_help():
    result = run_converter('--help')
    assert result.returncode == 0
    assert 'usage' in result.stdout and '--arch' in result.stdout


def test_float64_parity(converted):
    dst, stdout = converted
    assert "arch={'embed_dims': 32" in stdout
    io = load_checkpoint_file(str(reference_fixture('boat_swin_mini_io.pth')))
    arch = fixture_arch(io)
    ckpt = load_checkpoint_file(str(dst))
    assert ckpt['meta']['source'] == 'boat-swin'
    model = build_classifier(arch, io['arch']['num_classes'])
    result = model.load_state_dict(ckpt['state_dict'], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    model = model.double().eval()

    stage_outputs = {}
    for i, stage in enumerate(model.backbone.stages):
        stage.blocks[-1].register_forward_hook(
            lambda m, args, out, i=i: stage_outputs.__setitem__(i, out))
    with torch.no_grad():
        logits = model(io['input'])

    def rel_err(out, ref):
        return ((out - ref).norm() / ref.norm()).item()

    errors = {'logits': rel_err(logits, io['logits'])}
    for i, ref in enumerate(io['stage_outputs']):
        errors[f'stage{i + 1}'] = rel_err(stage_outputs[i], ref)
    print('relative errors:', errors)
    assert all(e <= 1e-6 for e in errors.values()), errors


def test_backbone_init_cfg(converted):
    """The converted file initialises the backbone alone."""
    from mmboat.models.backbones import BOATSwinTransformer
    dst, _ = converted
    arch = dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))
    model = BOATSwinTransformer(
        arch=arch, init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    model.init_weights()
    sd = load_checkpoint_file(str(dst))['state_dict']
    torch.testing.assert_close(
        model.stages[2].blocks[1].fsla.get_v.weight,
        sd['backbone.stages.2.blocks.1.fsla.get_v.weight'],
        rtol=0,
        atol=0)


def test_merge_reorder(official):
    """Official (x0, x1, x2, x3) concat == mmcv's nn.Unfold order."""
    from mmcv.cnn.bricks.transformer import PatchMerging

    from mmboat.models.backbones.boat_swin import convert_boat_swin_checkpoint
    ckpt = load_checkpoint_file(str(official))
    sd = convert_boat_swin_checkpoint(ckpt)['state_dict']
    src = ckpt['model']
    merge = PatchMerging(32, 64, norm_cfg=dict(type='LN')).double()
    merge.load_state_dict({
        k.split('downsample.')[1]: v.double()
        for k, v in sd.items() if k.startswith('backbone.stages.0.downsample')
    })
    x = torch.randn(2, 8, 6, 32, dtype=torch.float64)
    ref = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2],
                     x[:, 1::2, 1::2]], -1)
    ref = torch.nn.functional.layer_norm(
        ref, (128, ), src['layers.0.downsample.norm.weight'].double(),
        src['layers.0.downsample.norm.bias'].double())
    ref = ref @ src['layers.0.downsample.reduction.weight'].double().T
    out, hw = merge(x.reshape(2, 48, 32), (8, 6))
    assert hw == (4, 3)
    torch.testing.assert_close(out, ref.reshape(2, 12, 64))


def test_swin_source(official, tmp_path):
    """An official Swin file (no FSLA) becomes a BOAT-Swin initialisation."""
    ckpt = load_checkpoint_file(str(official))
    swin = {
        k: v
        for k, v in ckpt['model'].items()
        if '.attnC.' not in k and '.norm4.' not in k
    }
    src = tmp_path / 'swin_mini.pth'
    torch.save({'model': swin, 'epoch': 299}, src)
    dst = tmp_path / 'boat_from_swin.pth'
    code = converter_main(src, dst)
    assert code == 0
    out = load_checkpoint_file(str(dst))
    meta, sd = out['meta'], out['state_dict']
    assert meta['source'] == 'swin'
    # 3 FSLA blocks (stages 1-3) x (norm 2 + qkv 2 + proj 2 + get_v 2)
    assert len(meta['fresh_keys']) == 24
    assert 'backbone.stages.0.blocks.1.fsla.qkv.weight' in meta['fresh_keys']
    # every Swin weight is mapped, unchanged
    torch.testing.assert_close(
        sd['backbone.stages.2.blocks.1.attn.w_msa.qkv.weight'],
        swin['layers.2.blocks.1.attn.qkv.weight'])
    torch.testing.assert_close(sd['backbone.norm3.weight'],
                               swin['norm.weight'])
    torch.testing.assert_close(sd['head.fc.weight'], swin['head.weight'])
    # fresh FSLA weights as in training from scratch
    assert torch.equal(sd['backbone.stages.0.blocks.1.norm_fsla.weight'],
                       torch.ones(32))
    assert sd['backbone.stages.0.blocks.1.fsla.qkv.weight'].std() < 0.05
    model = build_classifier(
        dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8)), 10)
    model.load_state_dict(sd, strict=True)


def test_swin_source_cli_lists_fresh_weights(official, tmp_path):
    ckpt = load_checkpoint_file(str(official))
    swin = {k: v for k, v in ckpt['model'].items() if '.attnC.' not in k
            and '.norm4.' not in k}
    src = tmp_path / 'swin_mini.pth'
    torch.save({'model': swin}, src)
    result = run_converter(src, tmp_path / 'out.pth')
    assert result.returncode == 0, result.stderr
    assert 'official Swin checkpoint' in result.stdout
    assert '24 FSLA weights are not in the Swin file and start fresh' in \
        result.stdout
    assert 'backbone.stages.2.blocks.1.fsla.get_v.bias' in result.stdout


def test_wrong_family(tmp_path, capsys):
    src = tmp_path / 'cswin.pth.tar'
    torch.save(
        {
            'state_dict': {
                'stage1_conv_embed.0.weight': torch.zeros(32, 3, 7, 7),
                'stage1.0.qkv.weight': torch.zeros(96, 32),
            },
            'arch': 'CSWin_64_12211_tiny_224',
            'epoch': 1,
        }, src)
    code = converter_main(src, tmp_path / 'out.pth')
    assert 'BOAT-CSWin' in str(code) and 'not a BOAT-Swin' in str(code)
    assert not (tmp_path / 'out.pth').exists()


def test_truncated_file(official, tmp_path):
    data = Path(official).read_bytes()
    src = tmp_path / 'truncated.pth'
    src.write_bytes(data[:len(data) // 2])
    code = converter_main(src, tmp_path / 'out.pth')
    assert 'truncated' in str(code)
    assert not (tmp_path / 'out.pth').exists()


def test_missing_weights(official, tmp_path):
    ckpt = load_checkpoint_file(str(official))
    del ckpt['model']['layers.1.blocks.1.attnC.proj.weight']
    del ckpt['model']['layers.2.downsample.reduction.weight']
    ckpt['config'] = None
    src = tmp_path / 'incomplete.pth'
    torch.save(ckpt, src)
    code = converter_main(src, tmp_path / 'out.pth')
    assert 'missing weights (2)' in str(code)
    assert 'layers.1.blocks.1.attnC.proj.weight' in str(code)
    assert 'layers.2.downsample.reduction.weight' in str(code)
    assert not (tmp_path / 'out.pth').exists()


def test_wrong_arch(official, tmp_path):
    code = converter_main(official, tmp_path / 'out.pth', '--arch', 'tiny')
    assert "not 'tiny'" in str(code)


class _Payload:
    """Unpickling this runs ``open(marker, 'w')``: it creates the file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), 'w')


def test_malicious_pickle_never_runs(official, tmp_path):
    ckpt = load_checkpoint_file(str(official))
    marker = tmp_path / 'pwned'
    ckpt['config'] = _Payload(marker)
    src = tmp_path / 'malicious.pth'
    torch.save(ckpt, src)
    assert not marker.exists()
    assert converter_main(src, tmp_path / 'out.pth') == 0
    assert not marker.exists()
    assert (tmp_path / 'out.pth').exists()
    # control: an unrestricted load does run the payload
    torch.load(src, weights_only=False)
    assert marker.exists()
