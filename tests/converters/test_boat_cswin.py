"""What only the BOAT-CSWin converter does: EMA weights, its key map, the
timm format's other files."""
import pytest
import torch

from mmboat.converters import convert_boat_cswin_checkpoint
from mmboat.utils import load_checkpoint_file
from tests.helpers import (REPO_ROOT, build_classifier, call_tool_main,
                           reference_arch, reference_fixture, rel_err,
                           run_classifier)

CONVERTER = REPO_ROOT / 'tools' / 'model_converters' / \
    'boat_cswin_to_mmboat.py'


@pytest.fixture(scope='module')
def official():
    return reference_fixture('boat_cswin_mini_official.pth')


@pytest.fixture(scope='module')
def io():
    return load_checkpoint_file(
        str(reference_fixture('boat_cswin_mini_io.pth')))


@pytest.fixture(scope='module')
def converted(official):
    return convert_boat_cswin_checkpoint(str(official))['state_dict']


def test_ema_weights(official, converted, io, tmp_path, capsys, one_thread):
    dst_ema = tmp_path / 'ema.pth'
    assert call_tool_main(CONVERTER, official, dst_ema, '--ema') == 0
    assert "'state_dict_ema'" in capsys.readouterr().out
    src = load_checkpoint_file(str(official))
    plain = converted
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
        model = build_classifier('BOATCSWinTransformer',
                                 reference_arch(io['arch']), 10)
        model.load_state_dict(sd, strict=True)
        outputs.append(run_classifier(model.double().eval(), x))
    assert rel_err(outputs[1][0], outputs[0][0]) > 1e-3
    for a, b in zip(outputs[0][1], outputs[1][1]):
        assert rel_err(b, a) > 1e-3


def test_key_map(official, converted):
    src = load_checkpoint_file(str(official))['state_dict']
    sd = converted
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
        'stage3.1.mlp.fc1.bias':
        'backbone.stages.2.blocks.1.ffn.layers.0.0.bias',
        'stage3.1.mlp.fc2.weight':
        'backbone.stages.2.blocks.1.ffn.layers.1.weight',
        'merge3.conv.weight': 'backbone.stages.2.downsample.conv.weight',
        'merge1.norm.bias': 'backbone.stages.0.downsample.norm.bias',
        'norm.weight': 'backbone.norm3.weight',
        'head.weight': 'head.fc.weight',
        'head.bias': 'head.fc.bias',
    }
    for old, new in pairs.items():
        assert torch.equal(sd[new], src[old]), old


def test_other_format_errors(official, tmp_path):
    ckpt = load_checkpoint_file(str(official))
    only_ema = tmp_path / 'only_ema.pth'
    torch.save({'state_dict_ema': ckpt['state_dict_ema']}, only_ema)
    assert '--ema' in str(
        call_tool_main(CONVERTER, only_ema, tmp_path / 'out.pth'))
    no_ema = tmp_path / 'no_ema.pth'
    torch.save({'state_dict': ckpt['state_dict']}, no_ema)
    assert "has none" in str(
        call_tool_main(CONVERTER, no_ema, tmp_path / 'out.pth', '--ema'))

    extra = dict(ckpt['state_dict'])
    extra['stage2.1.content_attn.proj.bias'] = torch.zeros(64)  # odd block
    odd = tmp_path / 'odd.pth'
    torch.save({'state_dict': extra}, odd)
    assert 'unexpected weights (1):\n  stage2.1.content_attn.proj.bias\n' in \
        str(call_tool_main(CONVERTER, odd, tmp_path / 'out.pth'))
