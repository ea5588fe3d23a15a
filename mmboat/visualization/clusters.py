"""Pictures of the feature-space clusters of FSLA.

For one image and a model of an mmdet, mmsegmentation or mmpretrain config
with a BOAT backbone, :func:`fsla_clusters` runs the image through the
config's own test pipeline, data preprocessor and backbone, captures the
input of the chosen FSLA blocks with forward hooks and clusters it with
the block's own query projection and clustering (FSLA's public steps
``project_qkv`` and ``cluster_order``, i.e. the ``mmboat::cluster_order``
op of :mod:`mmboat.ops`).
:func:`draw_clusters` draws one block's clusters over the image: one panel
per head (a colour per leaf cluster), and a tile with one query token, its
leaf cluster and the overlap tokens it borrows from the sibling leaf.

    from mmboat.visualization import draw_clusters, fsla_clusters
    picture, clusters = fsla_clusters('demo.jpg', CONFIG, weights=CKPT)
    for c in clusters:
        draw_clusters(picture, c, f'outputs/stage{c.stage}_block{c.block}.png')

Token ``(r, c)`` of a stage-``s`` grid covers the input pixels
``[r * stride, (r + 1) * stride) x [c * stride, (c + 1) * stride)`` with
``stride = 4 * 2**s`` (the backbones' nominal output strides).
"""
import os
import os.path as osp
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image

from mmboat.models.backbones.base import BaseBOATBackbone
from mmboat.models.layers import FeatureSpaceLocalAttention
from mmboat.models.validate import refusal
from mmboat.ops import key_windows

HWShape = Tuple[int, int]
RGB = Tuple[int, int, int]
BlockId = Tuple[int, int]  # (stage, block)

#: heads drawn when none are chosen: the first ones, at most this many
MAX_DEFAULT_HEADS = 8
#: colours of the query tile
QUERY_COLOURS = dict(
    query=(228, 26, 28), cluster=(255, 196, 0), overlap=(30, 100, 220))


@dataclass
class FSLAClusters:
    """The leaf clusters of one FSLA block for one image, every head.

    Attributes:
        stage (int), block (int): where the FSLA block is in the backbone.
        hw_shape (tuple[int]): the token grid (H, W); tokens are numbered
            row-major, ``token = r * W + c``.
        stride (int): input pixels per token side, ``4 * 2**stage``.
        order (Tensor): (h, G, m) long, the token held by every slot of
            every leaf cluster, head by head (``-1``: padding slot), as
            :func:`~mmboat.models.layers.balanced_hierarchical_clustering`
            returns it.
        overlap (int): tokens of its sibling leaf in every leaf's keys
            (0 with a single leaf).
    """
    stage: int
    block: int
    hw_shape: HWShape
    stride: int
    order: torch.Tensor
    overlap: int

    @property
    def num_heads(self) -> int:
        return self.order.shape[0]

    @property
    def num_leaves(self) -> int:
        return self.order.shape[1]

    def leaf_sizes(self) -> Tuple[int, int]:
        """Smallest and largest number of tokens in a leaf."""
        sizes = (self.order[0] >= 0).sum(-1)
        return int(sizes.min()), int(sizes.max())

    def leaf_map(self) -> torch.Tensor:
        """(h, H, W) long: the leaf cluster of every token, per head."""
        h, G, m = self.order.shape
        H, W = self.hw_shape
        leaf = torch.arange(G).repeat_interleave(m).expand(h, G * m)
        tokens = self.order.reshape(h, G * m)
        real = tokens >= 0
        out = torch.full((h, H * W), -1, dtype=torch.long)
        out[real.nonzero(as_tuple=True)[0], tokens[real]] = leaf[real]
        return out.view(h, H, W)

    def attended(self, head: int,
                 token: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """The keys of ``token``'s query in ``head``: the tokens of its own
        leaf (itself included) and the overlap tokens of the sibling leaf,
        as two 1-D long tensors of token indices (the key window of
        :func:`mmboat.ops.key_windows`, the one FSLA attends over, see
        ``FeatureSpaceLocalAttention.key_windows``)."""
        order = self.order[head]
        leaf = int(self.leaf_map()[head].view(-1)[token])
        own = order[leaf][order[leaf] >= 0]
        if self.overlap == 0:
            return own, own.new_empty(0)
        window = key_windows(order[None], self.overlap)[0, leaf]
        keys = window[window >= 0]
        return own, keys[~torch.isin(keys, own)]


def find_fsla_blocks(backbone) -> Dict[BlockId, FeatureSpaceLocalAttention]:
    """The FSLA modules of a BOAT backbone by (stage, block)."""
    return {
        (i, j): block.fsla
        for i, stage in enumerate(backbone.stages)
        for j, block in enumerate(stage.blocks)
        if getattr(block, 'fsla', None) is not None
    }


def _listing(blocks: Sequence[BlockId], num_stages: int) -> str:
    per_stage = [[j for s, j in blocks if s == i] for i in range(num_stages)]
    return ', '.join(f'stage {i}: {b}' for i, b in enumerate(per_stage) if b)


def select_fsla_blocks(
        backbone,
        stages: Optional[Sequence[int]] = None,
        blocks: Optional[Sequence[int]] = None) -> List[BlockId]:
    """The FSLA blocks, as (stage, block) pairs, in ``stages`` (default:
    all) and with block index in ``blocks`` (default: all).

    Raises:
        ValueError: the backbone has no FSLA block, a stage of ``stages``
            has none, or a block of ``blocks`` has none in the chosen
            stages; the message lists those that have.
    """
    found = sorted(find_fsla_blocks(backbone))
    num_stages = len(backbone.stages)
    family = getattr(backbone, 'family', type(backbone).__name__)
    if not found:
        raise ValueError(
            f'the {family} backbone has no FSLA block (fsla_blocks='
            f'{[list(b) for b in backbone.fsla_blocks]}), so there are no '
            'clusters to draw. Fix: use a BOAT config whose backbone keeps '
            'FSLA blocks (not a *-nofsla config)')
    have = _listing(found, num_stages)
    for name, values, top in (('stage', stages, num_stages),
                              ('block', blocks, max(backbone.depths))):
        for v in values or ():
            if not 0 <= v < top:
                raise refusal(ValueError, f'--{name}s', v,
                              f'the backbone has {top} {name}s (0-{top - 1})',
                              f'choose FSLA blocks among: {have}')
    chosen = [
        (s, j) for s, j in found
        if (stages is None or s in stages) and (blocks is None or j in blocks)
    ]
    for s in stages or ():
        if not any(i == s for i, _ in found):
            raise refusal(
                ValueError, '--stages', s, f'stage {s} has no FSLA block',
                f'choose --stages among those with FSLA blocks: {have}')
    for j in blocks or ():
        if not any(b == j for _, b in chosen):
            where = 'the chosen stages' if stages is not None else \
                'any stage'
            raise refusal(ValueError, '--blocks', j,
                          f'block {j} has no FSLA in '
                          f'{where}', f'choose FSLA blocks among: {have}')
    return chosen


def check_heads(heads: Optional[Sequence[int]],
                num_heads: int,
                where: str = '') -> List[int]:
    """``heads`` checked against ``num_heads``; default: the first
    :data:`MAX_DEFAULT_HEADS` heads."""
    if heads is None:
        return list(range(min(num_heads, MAX_DEFAULT_HEADS)))
    if not heads:
        raise refusal(
            ValueError, '--heads', [], 'give at least one head',
            f'choose heads among 0-{num_heads - 1} or leave --heads out')
    choices = '0' if num_heads == 1 else f'0-{num_heads - 1}'
    for h in heads:
        if not 0 <= h < num_heads:
            raise refusal(
                ValueError, '--heads', h,
                f'{where or "this block"} has {num_heads} head'
                f'{"s" if num_heads > 1 else ""} ({choices})',
                f'choose heads among {choices}, or other stages with '
                '--stages')
    return list(heads)


@contextmanager
def capture_fsla_inputs(modules: Dict[BlockId, torch.nn.Module]):
    """Forward pre-hooks that record the input ``(x, hw_shape)`` of every
    FSLA module: yields a dict (stage, block) -> list of the inputs, one
    per call, ``x`` (B, N, C) detached."""
    captured = {key: [] for key in modules}

    def hook(key):

        def record(module, args, kwargs):
            x = args[0] if args else kwargs['x']
            hw = args[1] if len(args) > 1 else kwargs['hw_shape']
            captured[key].append((x.detach(), tuple(hw)))

        return record

    handles = [
        m.register_forward_pre_hook(hook(k), with_kwargs=True)
        for k, m in modules.items()
    ]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def cluster_fsla_input(fsla: FeatureSpaceLocalAttention,
                       x: torch.Tensor) -> Tuple[torch.Tensor, int]:
    """The FSLA module's own clustering of its input ``x`` (B, N, C): its
    qkv projection and query clustering, as in its forward
    (:meth:`~mmboat.models.layers.FeatureSpaceLocalAttention.project_qkv`,
    ``cluster_order``).

    Returns ``order`` (B * h, G, m), the token of every slot of every leaf
    (``-1``: padding), and the overlap FSLA uses with it (its ``overlap``
    capped, ``key_overlap``).
    """
    order = fsla.cluster_order(fsla.project_qkv(x))
    return order, fsla.key_overlap(x.shape[1])


def _model_picture(batch: dict, input_hw: HWShape) -> np.ndarray:
    """The image the model saw (after the test pipeline, before
    normalisation) as (H, W, 3) uint8 RGB, padded at the bottom and right
    to ``input_hw`` as the data preprocessor pads it. The pipelines load
    images in mmcv's BGR order."""
    image = batch['inputs'][0].cpu().numpy().transpose(1, 2, 0)
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    image = np.ascontiguousarray(image[..., 2::-1]).astype(np.uint8)
    H, W = input_hw
    picture = np.zeros((H, W, 3), np.uint8)
    h, w = min(H, image.shape[0]), min(W, image.shape[1])
    picture[:h, :w] = image[:h, :w]
    return picture


def fsla_clusters(
    image: Union[str, os.PathLike],
    model,
    weights: Optional[str] = None,
    device: str = 'cpu',
    stages: Optional[Sequence[int]] = None,
    blocks: Optional[Sequence[int]] = None
) -> Tuple[np.ndarray, List[FSLAClusters]]:
    """Clusters of the chosen FSLA blocks for one image.

    The image goes through the config's test pipeline and data
    preprocessor (those of the library's inferencer) and the model's
    backbone, with hooks on the chosen FSLA blocks.

    Args:
        image: an image file.
        model: a config (path or :class:`~mmengine.config.Config`) or an
            inferencer of :func:`mmboat.apis.build_inferencer`.
        weights, device: as in :func:`mmboat.apis.build_inferencer` (for a
            config only).
        stages, blocks: as in :func:`select_fsla_blocks`.

    Returns:
        The picture the model saw, (H, W, 3) uint8 RGB, and one
        :class:`FSLAClusters` per chosen block, in (stage, block) order.
    """
    from mmboat.apis import build_inferencer
    image = str(image)
    if not osp.isfile(image):
        raise FileNotFoundError(
            f'image {image} does not exist; give an image file, e.g. '
            'data/tiny_shapes/coco/images/val/000000.jpg')
    inferencer = model if hasattr(model, 'preprocess') else \
        build_inferencer(model, weights, device)
    net = inferencer.model
    backbone = getattr(net, 'backbone', None)
    if not isinstance(backbone, BaseBOATBackbone):
        raise ValueError(
            f'the model ({type(net).__name__}) has no BOAT backbone but '
            f'{type(backbone).__name__}: FSLA clusters need '
            'BOATSwinTransformer or BOATCSWinTransformer; use an mmboat '
            'config')
    chosen = select_fsla_blocks(backbone, stages, blocks)
    modules = find_fsla_blocks(backbone)
    batch = next(iter(inferencer.preprocess([image], batch_size=1)))
    if isinstance(batch, (list, tuple)):  # mmdet: (originals, data)
        batch = batch[-1]
    with torch.no_grad(), capture_fsla_inputs(
        {key: modules[key]
         for key in chosen}) as captured:
        inputs = net.data_preprocessor(batch, False)['inputs']
        backbone(inputs)
    picture = _model_picture(batch, inputs.shape[-2:])
    clusters = []
    for stage, block in chosen:
        (x, hw_shape), = captured[(stage, block)]
        order, overlap = cluster_fsla_input(modules[(stage, block)], x)
        clusters.append(
            FSLAClusters(stage, block, hw_shape, 4 * 2**stage, order.cpu(),
                         overlap))
    return picture, clusters


def leaf_palette(num_leaves: int) -> List[RGB]:
    """One colour per leaf; sibling leaves (2j, 2j + 1) share a hue, dark
    and light (matplotlib's ``tab20`` up to 20 leaves, evenly spaced hues
    beyond)."""
    import matplotlib
    if num_leaves <= 20:
        cmap = matplotlib.colormaps['tab20']
        colours = [cmap(i)[:3] for i in range(num_leaves)]
    else:
        import colorsys
        pairs = (num_leaves + 1) // 2
        colours = []
        for i in range(num_leaves):
            # neighbouring pairs far apart on the hue circle
            hue = ((i // 2) * 7 % pairs) / pairs
            light = 0.42 if i % 2 == 0 else 0.68
            colours.append(colorsys.hls_to_rgb(hue, light, 0.75))
    return [tuple(int(round(255 * c)) for c in rgb) for rgb in colours]


class ClusterPicture(NamedTuple):
    """What :func:`draw_clusters` wrote.

    ``panels`` maps each panel name (``'head 0'``, ..., ``'query'``) to
    its box ``(top, left, height, width)`` in the pixels of the PNG;
    ``cell`` is the side of a token in the panels, in PNG pixels.
    """
    path: str
    panels: Dict[str, Tuple[int, int, int, int]]
    cell: float

    def token_centre(self, panel: str, row: int, col: int) -> Tuple[int, int]:
        """(y, x) PNG pixel at the centre of token (row, col) of a panel."""
        top, left, _, _ = self.panels[panel]
        return (top + int((row + 0.5) * self.cell), left + int(
            (col + 0.5) * self.cell))


def _cells(size: int, cell: float, count: int) -> np.ndarray:
    """The token row (or column) of every panel pixel row (or column)."""
    return np.minimum((np.arange(size) / cell).astype(int), count - 1)


def _panel(base: np.ndarray, colours: np.ndarray, alpha: np.ndarray,
           rows: np.ndarray, cols: np.ndarray,
           leaves: Optional[np.ndarray]) -> np.ndarray:
    """Blend per-token ``colours`` (H, W, 3) with weights ``alpha`` (H, W)
    over ``base`` (h, w, 3), with the token grid and, given ``leaves``
    (H, W) and tokens of at least 16 pixels, darker lines between tokens of
    different leaves."""
    per_pixel = colours[rows[:, None], cols[None, :]].astype(np.float32)
    a = alpha[rows[:, None], cols[None, :]][..., None]
    out = base.astype(np.float32) * (1 - a) + per_pixel * a
    cell = len(rows) / (rows[-1] + 1)
    if cell >= 6:  # the token grid: light lines at token borders
        for edges, axis in ((np.flatnonzero(np.diff(rows)) + 1, 0),
                            (np.flatnonzero(np.diff(cols)) + 1, 1)):
            index = [slice(None)] * 2
            index[axis] = edges
            out[tuple(index)] = out[tuple(index)] * 0.6 + 255 * 0.4
    if leaves is not None and cell >= 16:  # leaf borders: dark lines
        pix = leaves[rows[:, None], cols[None, :]]
        border = np.zeros(pix.shape, bool)
        border[1:] |= pix[1:] != pix[:-1]
        border[:, 1:] |= pix[:, 1:] != pix[:, :-1]
        out[border] = out[border] * 0.25
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def draw_clusters(picture: np.ndarray,
                  clusters: FSLAClusters,
                  out_file: Union[str, os.PathLike],
                  heads: Optional[Sequence[int]] = None,
                  query: Optional[Tuple[int, int]] = None,
                  query_head: Optional[int] = None,
                  palette: Optional[Sequence[RGB]] = None,
                  alpha: float = 0.55,
                  panel_size: int = 320,
                  max_cols: int = 5,
                  show_image: bool = True,
                  palette_png: bool = False,
                  title: Optional[str] = None,
                  dpi: int = 100) -> ClusterPicture:
    """Draw one FSLA block's leaf clusters over the picture, as a PNG.

    The image, then one panel per head: every token coloured by its leaf
    cluster (``palette[leaf]``, blended with weight ``alpha`` over the
    picture in grey), thin lines between tokens and dark lines between
    leaves (tokens of 16 pixels or more); then a query
    tile: the query token, the other tokens of its leaf and the overlap
    tokens of its sibling leaf in three colours (:data:`QUERY_COLOURS`),
    the rest greyed. Titles give stage, block, head, number of clusters
    and their size; a legend is below the panels.

    Args:
        picture: (H, W, 3) uint8 RGB, the image the model saw (from
            :func:`fsla_clusters`), at least the token grid's extent or
            padded with black to it.
        clusters: one block's :class:`FSLAClusters`.
        out_file: the PNG to write (folders are made).
        heads: heads to draw (:func:`check_heads`).
        query: (x, y) pixel of ``picture`` whose token is the query;
            default: the centre.
        query_head: the head of the query tile; default: the first drawn.
        palette: RGB colour per leaf; default :func:`leaf_palette`.
        alpha: weight of the leaf colours over the picture, in [0, 1].
        panel_size: long side of a panel in pixels.
        max_cols: panels per row.
        show_image: start with a panel of the image alone.
        palette_png: write an 8-bit palette PNG (:func:`to_palette_png`),
            the leaf, query, white and black colours kept exactly.
        title: figure title; default: stage, block, grid and stride.

    Returns:
        :class:`ClusterPicture`: the path and where the panels are.
    """
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    where = f'stage {clusters.stage} (block {clusters.block})'
    heads = check_heads(heads, clusters.num_heads, where)
    query_head = heads[0] if query_head is None else \
        check_heads([query_head], clusters.num_heads, where)[0]
    if not 0 <= alpha <= 1:
        raise refusal(ValueError, 'alpha', alpha, 'it is a blending weight',
                      'use a value in [0, 1], e.g. 0.55')
    H, W = clusters.hw_shape
    G = clusters.num_leaves
    stride = clusters.stride
    palette = leaf_palette(G) if palette is None else list(palette)
    if len(palette) < G:
        raise refusal(ValueError, 'palette', f'{len(palette)} colours',
                      f'this block has {G} leaf clusters',
                      f'give at least {G} colours')
    extent = (H * stride, W * stride)
    if query is None:
        query = (min(picture.shape[1], extent[1]) // 2,
                 min(picture.shape[0], extent[0]) // 2)
    qx, qy = query
    if not (0 <= qx < extent[1] and 0 <= qy < extent[0]):
        raise refusal(
            ValueError, '--query', tuple(query),
            f'the tokens of stage {clusters.stage} cover x in '
            f'[0, {extent[1]}) and y in [0, {extent[0]})',
            'give a pixel (x, y) inside the image the model saw')
    q_row, q_col = qy // stride, qx // stride
    q_token = q_row * W + q_col

    # the picture over the token grid's extent, scaled to the panel size
    base = np.zeros(extent + (3, ), np.uint8)
    h, w = min(extent[0], picture.shape[0]), min(extent[1], picture.shape[1])
    base[:h, :w] = picture[:h, :w]
    scale = panel_size / max(extent)
    size = (max(1, round(extent[0] * scale)), max(1, round(extent[1] * scale)))
    cell = size[0] / H
    base = np.asarray(Image.fromarray(base).resize(size[::-1], Image.BICUBIC))
    rows, cols = _cells(size[0], cell, H), _cells(size[1], cell, W)

    # colours over the grey image keep their hue (a colourful image would
    # shift them); the query tile greys the image further
    grey = base.astype(np.float32) @ np.float32([0.299, 0.587, 0.114])
    grey = np.repeat(grey[..., None], 3, -1)
    leaf_map = clusters.leaf_map().numpy()
    colours = np.asarray(palette[:G] + [(0, 0, 0)], np.uint8)  # -1: black
    rasters = {'image': base} if show_image else {}
    for head in heads:
        leaves = leaf_map[head]
        rasters[f'head {head}'] = _panel(grey, colours[leaves],
                                         np.full((H, W), alpha), rows, cols,
                                         leaves)
    own, borrowed = clusters.attended(query_head, q_token)
    kind = np.zeros(H * W, int)  # 0 not attended, 1 leaf, 2 overlap, 3 q
    kind[own.numpy()] = 1
    kind[borrowed.numpy()] = 2
    kind[q_token] = 3
    kind = kind.reshape(H, W)
    tile_colours = np.asarray(
        [(0, 0, 0), QUERY_COLOURS['cluster'], QUERY_COLOURS['overlap'],
         QUERY_COLOURS['query']], np.uint8)[kind]
    rasters['query'] = _panel(grey * 0.3 + 150, tile_colours,
                              np.where(kind > 0, max(alpha, 0.8), 0.), rows,
                              cols, None)

    # layout, in pixels
    names = list(rasters)
    ncols = min(len(names), max_cols)
    nrows = -(-len(names) // ncols)
    gap, head_h, title_h = 24, 46, 64
    legend_rows = 0 if G > 40 else -(-G // 10)
    legend_h = 40 + 20 * max(legend_rows, 3)
    fig_w = ncols * size[1] + (ncols + 1) * gap
    fig_h = title_h + nrows * (head_h + size[0]) + legend_h
    fig = plt.figure(figsize=(fig_w / dpi, fig_h / dpi), dpi=dpi)
    fig.patch.set_facecolor('white')
    lo, hi = clusters.leaf_sizes()
    sizes = f'{lo}' if lo == hi else f'{lo}-{hi}'
    overlap = f' + {clusters.overlap} overlap' if clusters.overlap else ''
    panels = {}
    for i, name in enumerate(names):
        r, c = divmod(i, ncols)
        top = title_h + r * (head_h + size[0]) + head_h
        left = gap + c * (size[1] + gap)
        panels[name] = (top, left, size[0], size[1])
        ax = fig.add_axes([
            left / fig_w, 1 - (top + size[0]) / fig_h, size[1] / fig_w,
            size[0] / fig_h
        ])
        ax.imshow(rasters[name], interpolation='nearest', resample=False)
        ax.set_axis_off()
        if name == 'query':
            text = (f'query token ({q_row}, {q_col}), head {query_head}\n'
                    f'attends to {len(own)} + {len(borrowed)} tokens')
            radius = max(cell * 0.9, 7)
            ax.add_patch(
                matplotlib.patches.Circle(
                    ((q_col + 0.5) * cell - 0.5, (q_row + 0.5) * cell - 0.5),
                    radius,
                    fill=False,
                    lw=1.5,
                    ec='white'))
        elif name == 'image':
            text = f'image\n{extent[0]} x {extent[1]} px, as the model sees it'
        else:
            text = (f'{name}\n{G} cluster{"s" if G > 1 else ""} of '
                    f'{sizes} tokens{overlap}')
        ax.set_title(text, fontsize=10.5, pad=5, linespacing=1.3)
    if title is None:
        title = (f'FSLA feature-space clusters, stage {clusters.stage}, '
                 f'block {clusters.block}\n{H} x {W} tokens of '
                 f'{stride} x {stride} px, {clusters.num_heads} head'
                 f'{"s" if clusters.num_heads > 1 else ""}')
    fig.suptitle(
        title, y=1 - 8 / fig_h, va='top', fontsize=12, linespacing=1.35)

    def swatch(rgb):
        return Patch(fc=np.asarray(rgb) / 255, ec='0.3', lw=0.5)

    query_items = [(swatch(QUERY_COLOURS['query']), 'query token'),
                   (swatch(QUERY_COLOURS['cluster']), 'its leaf cluster'),
                   (swatch(QUERY_COLOURS['overlap']),
                    'overlap from sibling leaf')]
    if G == 1:
        leaf_items = []
        leaf_title = ('1 leaf cluster: FSLA attends over all tokens here '
                      '(too few for 2 clusters)')
    elif legend_rows:
        leaf_items = [(swatch(palette[g]), f'{g}') for g in range(G)]
        leaf_title = 'leaf cluster (siblings 2j, 2j+1: one hue)'
    else:
        leaf_items = []
        leaf_title = f'{G} leaf clusters, one colour each'
    legend_top = 1 - (fig_h - legend_h + 6) / fig_h
    # under the first head panel
    leaf_left = panels[f'head {heads[0]}'][1] / fig_w
    if leaf_items:
        fig.legend(
            *zip(*leaf_items),
            loc='upper left',
            bbox_to_anchor=(leaf_left, legend_top),
            ncol=min(G, 10),
            fontsize=9,
            title=leaf_title,
            title_fontsize=9.5,
            frameon=False,
            handlelength=1.2,
            columnspacing=0.9,
            handletextpad=0.4)
    else:
        fig.text(leaf_left, legend_top, leaf_title, va='top', fontsize=9.5)
    fig.legend(
        *zip(*query_items),
        loc='upper right',
        bbox_to_anchor=(1 - gap / fig_w, legend_top),
        fontsize=9,
        title='query tile',
        title_fontsize=9.5,
        frameon=False,
        handlelength=1.2,
        handletextpad=0.4)
    out_file = str(out_file)
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    fig.savefig(out_file, dpi=dpi)
    plt.close(fig)
    if palette_png:
        keep = [
            *palette[:G], *QUERY_COLOURS.values(), (255, 255, 255), (0, 0, 0)
        ]
        to_palette_png(out_file, keep[:128])
    return ClusterPicture(out_file, panels, cell)


def to_palette_png(path: str, keep: Sequence[RGB]) -> None:
    """Rewrite an RGB(A) PNG as an 8-bit palette PNG of 256 colours: the
    ``keep`` colours exactly, the others from an octree quantisation of the
    picture (every pixel takes its nearest palette colour, no dithering).
    Several times smaller for pictures of noisy images."""
    image = np.asarray(Image.open(path).convert('RGB'))
    keep = np.asarray(list(dict.fromkeys(map(tuple, keep))), np.int32)
    others = Image.fromarray(image).quantize(
        colors=256 - len(keep),
        method=Image.Quantize.FASTOCTREE,
        dither=Image.Dither.NONE).getpalette()[:3 * (256 - len(keep))]
    palette = np.concatenate([keep, np.reshape(others, (-1, 3))])
    colours, pixel_colour = np.unique(
        image.reshape(-1, 3), axis=0, return_inverse=True)
    nearest = np.empty(len(colours), np.uint8)
    for i in range(0, len(colours), 4096):
        diff = colours[i:i + 4096, None].astype(np.int32) - palette[None]
        nearest[i:i + 4096] = (diff**2).sum(-1).argmin(1)
    out = Image.fromarray(
        nearest[pixel_colour.ravel()].reshape(image.shape[:2]), 'P')
    out.putpalette(palette.astype(np.uint8).ravel().tolist())
    out.save(path, optimize=True)
