"""What only the BOAT-Swin converter does: patch-merging order, --arch."""
import pytest
import torch

from mmboat.converters import CONVERTERS, convert_boat_swin_checkpoint
from mmboat.converters.cli import build_parser
from mmboat.models.backbones import BOATSwinTransformer
from mmboat.utils import load_checkpoint_file
from tests.helpers import REPO_ROOT, call_tool_main, reference_fixture

CONVERTER = REPO_ROOT / 'tools' / 'model_converters' / 'boat_swin_to_mmboat.py'


@pytest.fixture(scope='module')
def official():
    return reference_fixture('boat_swin_mini_official.pth')


def test_merge_reorder(official):
    """Official (x0, x1, x2, x3) concat == mmcv's nn.Unfold order."""
    from mmcv.cnn.bricks.transformer import PatchMerging
    ckpt = load_checkpoint_file(str(official))
    sd = convert_boat_swin_checkpoint(ckpt)['state_dict']
    src = ckpt['model']
    merge = PatchMerging(32, 64, norm_cfg=dict(type='LN')).double()
    merge.load_state_dict({
        k.split('downsample.')[1]: v.double()
        for k, v in sd.items() if k.startswith('backbone.stages.0.downsample')
    })
    x = torch.randn(2, 8, 6, 32, dtype=torch.float64)
    ref = torch.cat([
        x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]
    ], -1)
    ref = torch.nn.functional.layer_norm(
        ref, (128, ), src['layers.0.downsample.norm.weight'].double(),
        src['layers.0.downsample.norm.bias'].double())
    ref = ref @ src['layers.0.downsample.reduction.weight'].double().T
    out, hw = merge(x.reshape(2, 48, 32), (8, 6))
    assert hw == (4, 3)
    torch.testing.assert_close(out, ref.reshape(2, 12, 64))


def test_wrong_arch(official, tmp_path):
    code = call_tool_main(CONVERTER, official, tmp_path / 'out.pth', '--arch',
                          'tiny')
    assert "not 'tiny'" in str(code)
    assert not (tmp_path / 'out.pth').exists()


def test_arch_choices_are_the_presets():
    parser = build_parser(CONVERTERS['boat-swin'])
    arch = next(a for a in parser._actions if a.dest == 'arch')
    assert arch.choices == list(BOATSwinTransformer.arch_zoo)
