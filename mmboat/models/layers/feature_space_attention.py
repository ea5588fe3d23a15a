"""Feature-space local attention (FSLA), the new half of a BOAT block.

FSLA groups the tokens of an image by their query features with the balanced
hierarchical clustering (the ``mmboat::cluster_order`` op of
:mod:`mmboat.ops`, whose :mod:`~mmboat.ops.cluster_layout` states the layout
rule for any number of tokens) and runs self-attention inside each cluster,
so that similar patches far apart in the image attend to each other. A
depthwise convolution of the values (LePE) is added. The op, the gathers
between token and cluster order and their autograd Functions are in
:mod:`mmboat.ops`; this module holds the parameters and puts them together.

Shapes: ``B`` images, ``N = H * W`` tokens, ``C`` channels, ``h`` heads of
``d = C / h`` dims, ``G = 2**L`` leaf clusters of ``m`` slots each and an
overlap of ``o`` sibling tokens in every leaf's keys.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from mmboat.ops import (cluster_order, gather_cluster_qkv, key_overlap,
                        key_windows, slot_maps, to_token_order)
from ..validate import (check_fsla_options, check_int, refusal,
                        token_dtype_error)
from .lepe import LePE
from .padding import has_padding

HWShape = Tuple[int, int]
# leaves G, slots per leaf m and overlap o of a clustering
ClusterShape = Tuple[int, int, int]


class FeatureSpaceLocalAttention(nn.Module):
    """Feature-space local attention (FSLA) with LePE.

    Queries are clustered per image and per head (the
    ``mmboat::cluster_order`` op); attention runs inside every leaf cluster
    against its own tokens plus ``overlap`` tokens of its sibling; a
    depthwise 3x3 convolution of the values (LePE) is added and the result
    projected. Any H x W and batch size: the rule for numbers of tokens that
    are not ``cluster_size * 2**L`` (padding, overlap cap, single cluster)
    is in :mod:`mmboat.ops.cluster_layout`; it reduces to the published
    computation when ``N = cluster_size * 2**L``. Arguments are checked
    here; ``forward`` only checks the shapes of its input.

    Public steps of the forward pass (cluster pictures, benchmarks):
    :meth:`project_qkv` (the projections), :meth:`cluster_order` (the
    leaf clusters), :meth:`key_windows` / :meth:`key_overlap` (what every
    leaf attends to).

    Args:
        embed_dims (int): channels C.
        num_heads (int): attention heads; must divide C.
        cluster_size (int): tokens per cluster. Default: 49.
        overlap (int): sibling tokens added to every cluster's keys and
            values. Default: 20.
        num_iters (int): centroid refinement iterations. Default: 2.
        temperature (float): softmax temperature of the clustering.
            Default: 100.
        qk_scale (float, optional): attention scale; ``head_dim ** -0.5``
            when None. The published BOAT-CSWin weights need 1.0.
        qkv_bias (bool): bias in the qkv projection. Default: True.
        attn_drop (float): dropout on attention weights. Default: 0.
        proj_drop (float): dropout after the output projection. Default: 0.

    Shape:
        x: (B, N, C) tokens of an H x W grid in row-major order;
        returns (B, N, C).
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 cluster_size: int = 49,
                 overlap: int = 20,
                 num_iters: int = 2,
                 temperature: float = 100.,
                 qk_scale: Optional[float] = None,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.):
        super().__init__()
        owner = type(self).__name__
        check_int('embed_dims', embed_dims, 1, 'use e.g. embed_dims=96', owner,
                  ' (channels C)')
        check_int('num_heads', num_heads, 1,
                  'use e.g. num_heads=3, a divisor of embed_dims', owner,
                  ' (attention heads)')
        if embed_dims % num_heads != 0:
            raise refusal(
                ValueError, 'num_heads', num_heads,
                f'it must divide embed_dims={embed_dims}',
                f'use a divisor of {embed_dims}, e.g. num_heads='
                f'{max(d for d in range(1, num_heads) if embed_dims % d == 0)}'
                if num_heads > 1 else 'use num_heads=1', owner)
        check_fsla_options(
            cluster_size,
            overlap,
            num_iters,
            temperature,
            qk_scale,
            owner=owner)
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.cluster_size = cluster_size
        self.overlap = overlap
        self.num_iters = num_iters
        self.temperature = temperature
        self.scale = self.head_dims**-0.5 if qk_scale is None else qk_scale
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.get_v = LePE(embed_dims)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)
        # qkv output channels reordered (part, head, dim) -> (head, part,
        # dim): one row of 3 * head_dims values is the query, key and value
        # of one (token, head), so one gather sorts all three.
        head_major = torch.arange(3 * embed_dims).view(3, num_heads, -1)
        self.register_buffer(
            'head_major',
            head_major.transpose(0, 1).reshape(-1),
            persistent=False)

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, '
                f'cluster_size={self.cluster_size}, overlap={self.overlap}, '
                f'num_iters={self.num_iters}, temperature={self.temperature}, '
                f'scale={self.scale:.4g}')

    def forward(self, x: torch.Tensor, hw_shape: HWShape) -> torch.Tensor:
        """(B, N, C) tokens of an H x W grid -> (B, N, C)."""
        if x.dim() != 3 or x.shape[2] != self.embed_dims or \
                x.shape[1] != hw_shape[0] * hw_shape[1]:
            raise ValueError(
                f'FSLA takes 3-D tokens (B, N, C) of the hw_shape grid, N = '
                f'H * W and C = embed_dims = {self.embed_dims}: got x of '
                f'shape {tuple(x.shape)} and hw_shape={tuple(hw_shape)}')
        weight = self.qkv.weight
        # metadata only (no sync): the dtype the projections can take;
        # autocast casts float tokens itself (it has no 'meta' device)
        if x.dtype != weight.dtype and not (
                x.dtype in (torch.float16, torch.bfloat16, torch.float32)
                and x.device.type != 'meta'
                and torch.is_autocast_enabled(x.device.type)):
            raise token_dtype_error(x.dtype, weight.dtype, type(self).__name__)
        N = x.shape[1]
        qkv = self.project_qkv(x)
        order = self.cluster_order(qkv)
        G, m = order.shape[1:]
        padded = has_padding(G * m - N)
        maps = slot_maps(order, N, self.num_heads, padded)
        out, lepe = self._cluster_attention(qkv, order, maps, padded, hw_shape)
        out = to_token_order(out, maps, x.shape) + lepe
        return self.proj_drop(self.proj(out))

    # ------------------------------------------------------------ public
    # What FSLA computes on the way, for the cluster pictures
    # (mmboat.visualization) and the benchmarks: the forward pass is
    # ``project_qkv``, ``cluster_order``, attention over ``key_windows``.

    def project_qkv(self, x: torch.Tensor) -> torch.Tensor:
        """The projections: (B, N, C) tokens -> (B, N, h, 3, d), the query
        (``[..., 0, :]``), key (``1``) and value (``2``) of every (image,
        token, head); ``qkv(x)`` with its channels ``part * C + head * d +
        j`` laid out as ``[b, token, head, part, j]``."""
        B, N, _ = x.shape
        weight, bias = self.qkv.weight, self.qkv.bias
        bias = None if bias is None else bias[self.head_major]
        qkv = F.linear(x, weight[self.head_major], bias)
        return qkv.view(B, N, self.num_heads, 3, self.head_dims)

    def cluster_order(self, qkv: torch.Tensor) -> torch.Tensor:
        """The cluster order: the queries of every (image, head) of
        :meth:`project_qkv`'s (B, N, h, 3, d) clustered ->
        (B * h, G, m) long, row ``b * h + head``: the token held by every
        slot of every leaf cluster, in leaf order (``-1``: padding slot);
        the ``mmboat::cluster_order`` op."""
        B, N, h, _, d = qkv.shape
        return cluster_order(
            qkv[..., 0, :].transpose(1, 2).reshape(B * h, N, d),
            self.cluster_size, self.num_iters, self.temperature)

    def key_overlap(self, num_tokens: int) -> int:
        """Sibling tokens in every leaf's keys for ``num_tokens`` tokens:
        ``overlap`` capped at the smallest leaf, 0 with a single leaf
        (:func:`mmboat.ops.key_overlap`)."""
        return key_overlap(num_tokens, self.cluster_size, self.overlap)

    def key_windows(self, order: torch.Tensor,
                    num_tokens: int) -> torch.Tensor:
        """The key windows: (B * h, G, m) :meth:`cluster_order` of
        ``num_tokens`` tokens -> (B * h, G, m + o) long, the tokens whose
        keys and values every leaf attends to (``-1``: padding, masked):
        leaf 2j its own slots and the first ``o`` of leaf 2j + 1, leaf
        2j + 1 the last ``o`` of leaf 2j and its own; ``o =``
        :meth:`key_overlap`."""
        return key_windows(order, self.key_overlap(num_tokens))

    # ------------------------------------------------------------ private
    def _cluster_attention(self, qkv: torch.Tensor, order: torch.Tensor, maps,
                           padded: bool, hw_shape: HWShape):
        """Attention inside every leaf, over its own and its overlap keys,
        and LePE: (B, N, h, 3, d) -> the attention output (B * h, G, m, d)
        in the slot order and LePE (B, N, C).

        Padding keys (``order`` -1, the same slots in every row) are masked
        when ``padded``. In training, with gradients recorded, what is
        computed from the projections here (the key windows, which repeat
        ``2 * overlap`` keys and values of every leaf pair, attention's
        output, LePE's input) is computed again in the backward instead of
        kept for it (activation checkpointing of :meth:`_attend_and_lepe`):
        autograd keeps 5x the bytes of the layer's input instead of 8x.
        """
        N = qkv.shape[1]
        G, m = order.shape[1:]
        overlap = self.key_overlap(N)
        mask = None
        if padded:  # 4-D, or CPU runs unfused attention
            mask = order[:1] >= 0  # (1, G, m): the layout is per N only
            mask = key_windows(mask, overlap)[:, :, None, :]  # (1,G,1,m+o)
        args = qkv, maps, (G, m, overlap), mask, hw_shape
        if self.training and torch.is_grad_enabled() and qkv.requires_grad:
            return checkpoint(
                self._attend_and_lepe, *args, use_reentrant=False)
        return self._attend_and_lepe(*args)

    def _attend_and_lepe(self, qkv: torch.Tensor, maps, layout: ClusterShape,
                         mask: Optional[torch.Tensor], hw_shape: HWShape):
        """(B, N, h, 3, d) projections -> the queries of every leaf against
        the keys and values of its key window, (B * h, G, m, d) in the slot
        order, and LePE (B, N, C); ``layout = (G, m, overlap)``."""
        B, N, h, _, d = qkv.shape
        G, m, overlap = layout
        q_c, k_c, v_c = gather_cluster_qkv(
            qkv.view(B * N * h, 3 * d), maps, G, m, overlap)
        out = F.scaled_dot_product_attention(
            q_c,
            k_c,
            v_c,
            attn_mask=mask,
            dropout_p=self.attn_drop if self.training else 0.,
            scale=self.scale)
        return out, self._lepe(qkv, hw_shape)

    def _lepe(self, qkv: torch.Tensor, hw_shape: HWShape) -> torch.Tensor:
        """LePE: ``get_v`` on the values in image order -> (B, N, C).

        Heads are concatenated head-major; (B, H, W, C) permuted is the
        channels-last layout of (B, C, H, W).
        """
        B, N = qkv.shape[:2]
        H, W = hw_shape
        v = qkv[..., 2, :].reshape(B, H, W, self.embed_dims)
        lepe = self.get_v(v.permute(0, 3, 1, 2))
        return lepe.permute(0, 2, 3, 1).reshape(B, N, self.embed_dims)
