"""mmboat.visualization.clusters: the colours drawn are the leaf clusters
that ``balanced_hierarchical_clustering`` gives the FSLA input of the real
model, pixel for pixel at every token centre; the query tile marks exactly
the query's leaf and its overlap tokens; bad choices are refused."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mmboat.apis import build_inferencer
from mmboat.datasets import draw_scene
from mmboat.models.backbones import BOATSwinTransformer
from mmboat.models.layers import balanced_hierarchical_clustering
from mmboat.visualization import (FSLAClusters, draw_clusters, fsla_clusters,
                                  select_fsla_blocks)
from mmboat.visualization.clusters import QUERY_COLOURS

TINY = Path(__file__).resolve().parents[2] / 'configs' / 'tiny'
DET_SWIN = TINY / 'mask-rcnn_boat-swin-nano_fpn_tiny-shapes.py'


@pytest.fixture(scope='module')
def image(tmp_path_factory):
    """A 96 x 128 PNG of tiny-shapes objects: 24 x 32 tokens at stage 0,
    16 leaves of 48 (no padding)."""
    img = draw_scene(np.random.default_rng(3), 128, 3)[0][:96]
    path = tmp_path_factory.mktemp('clusters') / 'scene.png'
    Image.fromarray(img).save(path)
    return path


@pytest.fixture(scope='module')
def det_run(image):
    """The randomly initialised tiny BOAT-Swin Mask R-CNN, its clusters of
    stage 0 (block 1) for the image, and the FSLA input captured by a hook
    of this test."""
    torch.manual_seed(0)
    inferencer = build_inferencer(DET_SWIN)
    fsla = inferencer.model.backbone.stages[0].blocks[1].fsla
    inputs = []
    handle = fsla.register_forward_pre_hook(
        lambda module, args: inputs.append(args[0]))
    picture, clusters = fsla_clusters(image, inferencer, stages=[0])
    handle.remove()
    return fsla, inputs, picture, clusters


def reference_order(fsla, x):
    """Leaf order of the queries of ``x`` (1, N, C) by the clustering
    function itself: (h, G, m) and the overlap."""
    h, d = fsla.num_heads, fsla.head_dims
    with torch.no_grad():
        q = F.linear(x, fsla.qkv.weight, fsla.qkv.bias)[..., :h * d]
    q = q.view(x.shape[1], h, d).transpose(0, 1)  # (h, N, d)
    order, layout = balanced_hierarchical_clustering(q, fsla.cluster_size,
                                                     fsla.num_iters,
                                                     fsla.temperature,
                                                     fsla.overlap)
    return order, layout.overlap


def distinct_palette(n):
    """``n`` colours, all different and none grey or a query colour."""
    return [(10 + 15 * i, 250 - 13 * i, (60 + 97 * i) % 200) for i in range(n)]


def read(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert('RGB')).astype(int)


def test_hook_sees_one_call_of_the_real_model(det_run):
    fsla, inputs, picture, clusters = det_run
    assert len(inputs) == 1
    assert inputs[0].shape == (1, 24 * 32, 32)
    assert picture.shape == (96, 128, 3) and picture.dtype == np.uint8
    assert [(c.stage, c.block) for c in clusters] == [(0, 1)]
    c = clusters[0]
    assert (c.hw_shape, c.stride, c.num_heads, c.num_leaves) == \
        ((24, 32), 4, 1, 16)


@pytest.mark.parametrize('palette_png', [False, True])
def test_colours_are_the_leaves_of_the_clustering_function(
        det_run, tmp_path, palette_png):
    fsla, inputs, picture, (clusters, ) = det_run
    order, overlap = reference_order(fsla, inputs[0])
    assert torch.equal(clusters.order, order)
    assert clusters.overlap == overlap == 20
    H, W = clusters.hw_shape
    leaf_of = torch.empty(H * W, dtype=torch.long)
    for g, tokens in enumerate(order[0]):
        leaf_of[tokens] = g
    palette = distinct_palette(16)
    drawn = draw_clusters(
        picture,
        clusters,
        tmp_path / 'c.png',
        palette=palette,
        alpha=1.,
        palette_png=palette_png)
    assert Image.open(drawn.path).mode == ('P' if palette_png else 'RGBA')
    png = read(drawn.path)
    assert list(drawn.panels) == ['image', 'head 0', 'query']
    for token in range(H * W):
        r, c = divmod(token, W)
        y, x = drawn.token_centre('head 0', r, c)
        assert tuple(png[y, x]) == palette[leaf_of[token]], (r, c)


def test_query_tile_marks_the_leaf_and_its_overlap(det_run, tmp_path):
    fsla, inputs, picture, (clusters, ) = det_run
    order, overlap = reference_order(fsla, inputs[0])
    H, W = clusters.hw_shape
    qx, qy = 70, 30  # pixel -> token (7, 17)
    query = 7 * W + 17
    leaf = int((order[0] == query).any(-1).nonzero())
    own = set(order[0, leaf].tolist())
    # keys of leaf 2j: the first `overlap` of leaf 2j + 1; of leaf 2j + 1:
    # the last `overlap` of leaf 2j
    sibling = order[0, leaf ^ 1].tolist()
    borrowed = set(sibling[:overlap] if leaf % 2 == 0 else sibling[-overlap:])
    drawn = draw_clusters(
        picture, clusters, tmp_path / 'q.png', query=(qx, qy), alpha=1.)
    png = read(drawn.path)
    marked = {name: set() for name in QUERY_COLOURS}
    for token in range(H * W):
        y, x = drawn.token_centre('query', *divmod(token, W))
        for name, rgb in QUERY_COLOURS.items():
            if tuple(png[y, x]) == rgb:
                marked[name].add(token)
    assert marked['query'] == {query}
    assert marked['cluster'] == own - {query}
    assert marked['overlap'] == borrowed and len(borrowed) == 20


def test_attended_tokens(det_run):
    _, _, _, (clusters, ) = det_run
    for token in (0, 100, 767):
        own, borrowed = clusters.attended(0, token)
        assert token in own.tolist() and len(own) == 48
        assert len(borrowed) == 20
        assert not set(own.tolist()) & set(borrowed.tolist())


def test_leaf_map_with_padding():
    # 5 tokens in 2 leaves of 3 slots: leaf 0 pads first, leaf 1 last
    order = torch.tensor([[[-1, 4, 0], [2, 1, 3]]])
    clusters = FSLAClusters(0, 1, (1, 5), 4, order, 1)
    assert clusters.leaf_map().tolist() == [[[0, 1, 1, 1, 0]]]
    assert clusters.leaf_sizes() == (2, 3)
    own, borrowed = clusters.attended(0, 4)
    assert own.tolist() == [4, 0] and borrowed.tolist() == [2]
    own, borrowed = clusters.attended(0, 3)
    assert own.tolist() == [2, 1, 3] and borrowed.tolist() == [0]


@pytest.mark.parametrize('stages, blocks, message', [
    ([3], None, 'stage 3 has no FSLA block'),
    ([4], None, 'the backbone has 4 stages'),
    (None, [0], 'block 0 has no FSLA'),
    ([0], [1], None),
])
def test_select_blocks(stages, blocks, message):
    # the published placement: FSLA in block 1 of stages 0-2
    backbone = BOATSwinTransformer(
        arch=dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 1, 1, 1)))
    if message is None:
        assert select_fsla_blocks(backbone, stages, blocks) == [(0, 1)]
        return
    with pytest.raises(ValueError, match=message) as error:
        select_fsla_blocks(backbone, stages, blocks)
    assert 'stage 0: [1], stage 1: [1], stage 2: [1]' in str(error.value)


def test_bad_heads_query_and_image(det_run, tmp_path):
    _, _, picture, (clusters, ) = det_run
    with pytest.raises(ValueError, match=r'has 1 head .*choose heads'):
        draw_clusters(picture, clusters, tmp_path / 'x.png', heads=[1])
    with pytest.raises(ValueError, match='cover x in'):
        draw_clusters(picture, clusters, tmp_path / 'x.png', query=(500, 0))
    with pytest.raises(FileNotFoundError, match='give an image file'):
        fsla_clusters(tmp_path / 'missing.jpg', DET_SWIN)
    assert not (tmp_path / 'x.png').exists()
