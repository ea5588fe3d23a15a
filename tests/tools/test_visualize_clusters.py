"""tools/analysis_tools/visualize_clusters.py: with a checkpoint of a tiny
BOAT-CSWin classifier, the PNG it writes colours every token with the leaf
cluster that ``balanced_hierarchical_clustering`` gives the FSLA input of
the same model run by its library's inferencer; bad choices stop it with
the fix, before any PNG is written."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mmboat.apis import build_inferencer
from mmboat.datasets import draw_scene
from mmboat.models.layers import balanced_hierarchical_clustering
from mmboat.visualization import leaf_palette
from tests.helpers import load_tool

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools' / 'analysis_tools' / 'visualize_clusters.py'
TINY = REPO / 'configs' / 'tiny'
CLS_CSWIN = TINY / 'boat-cswin-nano_tiny-shapes.py'


@pytest.fixture(scope='module')
def tool_main():
    """The tool's ``main(argv)``, in this process."""
    main = load_tool(TOOL).main
    return lambda *args: main([str(a) for a in args])


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """A 100 x 120 PNG (25 x 30 tokens at stage 0: 16 leaves of 46 or 47,
    padding included) and a checkpoint of the randomly initialised tiny
    BOAT-CSWin classifier."""
    folder = tmp_path_factory.mktemp('visualize_clusters')
    img = draw_scene(np.random.default_rng(5), 120, 3)[0][:100]
    image = folder / 'shapes.png'
    Image.fromarray(img).save(image)
    torch.manual_seed(1)
    model = build_inferencer(CLS_CSWIN).model
    checkpoint = folder / 'cswin.pth'
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    return image, checkpoint


def test_png_colours_are_the_leaf_clusters(tool_main, files, tmp_path, capsys):
    image, checkpoint = files
    (drawn, ) = tool_main(image, CLS_CSWIN, checkpoint, '--stages', 0,
                          '--alpha', 1, '--out-dir', tmp_path)
    assert drawn.path == str(tmp_path / 'shapes_stage0_block0.png')
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        ['shapes_stage0_block0.png']
    out = capsys.readouterr().out
    assert 'stage 0 block 0: 25 x 30 tokens, 2 head(s), 16 leaf ' \
        'cluster(s) of 46-47 tokens' in out

    # the same checkpoint run by mmpretrain's inferencer, FSLA input hooked
    inferencer = build_inferencer(CLS_CSWIN, checkpoint)
    fsla = inferencer.model.backbone.stages[0].blocks[0].fsla
    inputs = []
    handle = fsla.register_forward_pre_hook(
        lambda module, args: inputs.append(args[0]))
    inferencer(str(image))
    handle.remove()
    x, = inputs
    h, d = fsla.num_heads, fsla.head_dims
    with torch.no_grad():
        q = F.linear(x, fsla.qkv.weight, fsla.qkv.bias)[..., :h * d]
    q = q.view(x.shape[1], h, d).transpose(0, 1)
    order, _ = balanced_hierarchical_clustering(q, fsla.cluster_size,
                                                fsla.num_iters,
                                                fsla.temperature)
    assert order.shape == (2, 16, 47) and (order < 0).sum() == 2 * 2

    png = np.asarray(Image.open(drawn.path).convert('RGB'))
    palette = leaf_palette(16)
    for head in range(2):
        for leaf, tokens in enumerate(order[head].tolist()):
            for token in filter(lambda t: t >= 0, tokens):
                y, x = drawn.token_centre(f'head {head}', *divmod(token, 30))
                assert tuple(png[y, x]) == palette[leaf], (head, token)


@pytest.mark.parametrize('args, message', [
    (('--stages', 4), r'--stages=4 is not allowed: the backbone has 4 stages '
     r'\(0-3\). Fix: choose FSLA blocks among: stage 0: \[0\], stage 1: '
     r'\[0\], stage 2: \[0\], stage 3: \[0\]'),
    (('--stages', 0, '--blocks', 1), 'block 1 has no FSLA in the chosen '
     r'stages. Fix: choose FSLA blocks among: stage 0: \[0\], stage 1: '),
    (('--heads', 0, 2), r'stage 0 \(block 0\) has 2 heads \(0-1\). Fix: '
     'choose heads among 0-1'),
])
def test_bad_choices(tool_main, files, tmp_path, args, message):
    image, checkpoint = files
    with pytest.raises(SystemExit, match=message):
        tool_main(image, CLS_CSWIN, checkpoint, '--out-dir', tmp_path, *args)
    assert list(tmp_path.iterdir()) == []


def test_missing_image_and_no_fsla(tool_main, files, tmp_path):
    with pytest.raises(
            SystemExit,
            match='image .*missing.png does not exist'
            '; give an image file'):
        tool_main(tmp_path / 'missing.png', CLS_CSWIN)
    nofsla = TINY / 'upernet_boat-swin-nano-nofsla_tiny-shapes.py'
    with pytest.raises(
            SystemExit, match='has no FSLA block .*not a '
            r'\*-nofsla config'):
        tool_main(files[0], nofsla, '--out-dir', tmp_path)
    assert list(tmp_path.iterdir()) == []
