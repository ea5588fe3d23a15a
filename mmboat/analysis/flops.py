"""FLOPs of mmboat's operations for the counters users already run.

Stock counters see FSLA's clustering (the custom op
``mmboat::cluster_order``) and ``scaled_dot_product_attention`` as unknown
operations and count nothing for them. :func:`register_flop_counting`
(called on ``import mmboat``) teaches both counters these formulas:

* MMEngine's jit ``FlopAnalyzer`` (``get_model_complexity_info``, and so
  the ``get_flops.py`` of mmdet, mmseg and mmpretrain), which counts
  multiply-adds;
* ``torch.utils.flop_counter.FlopCounterMode``, which counts 2 FLOPs per
  multiply-add.

What is counted, in multiply-adds (MACs): the matrix products. Sorts,
gathers, softmax, norms of the clustering and element-wise ops are not
counted, as for every other operation in these counters.
"""
from typing import List, Sequence

import torch
from torch.utils.flop_counter import register_flop_formula

from ..ops import num_cluster_levels

# gathers whose backward is a gather (FSLA): 0 FLOPs
_GATHER_FUNCTIONS = ('prim::PythonOp._ClusterQKV',
                     'prim::PythonOp._GatherRowsFunction')


def _prod(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def cluster_order_macs(batch: int, num_tokens: int, dims: int,
                       cluster_size: int, num_iters: int) -> int:
    """MACs of :func:`~mmboat.ops.cluster_order` on a
    (batch, num_tokens, dims) input.

    Every level runs, over all ``Np = m * 2**L`` slots (padding included):
    two products per refinement iteration (scores against the centroid
    difference, new first-child sum), two for the final ratio, and one for
    the first-half sum when there is padding. No products when ``L = 0``.
    """
    L = num_cluster_levels(num_tokens, cluster_size)
    if L == 0:
        return 0
    num_slots = -(-num_tokens // 2**L) * 2**L
    padded = int(num_slots != num_tokens)
    per_level = (2 * num_iters + 2 + padded) * batch * num_slots * dims
    return L * per_level


def sdpa_macs(query_shape: Sequence[int], key_shape: Sequence[int],
              value_shape: Sequence[int]) -> int:
    """MACs of attention: ``q @ k^T`` and ``attn @ v``; (..., Lq, d) query,
    (..., Lk, d) key, (..., Lk, dv) value."""
    *batch, q_len, head_dims = query_shape
    return _prod(batch) * q_len * key_shape[-2] * (head_dims + value_shape[-1])


# ------------------------------------------------- MMEngine's FlopAnalyzer
def _jit_shape(value) -> List[int]:
    return value.type().sizes()


def _cluster_order_jit(inputs, outputs) -> int:
    batch, num_tokens, dims = _jit_shape(inputs[0])
    return cluster_order_macs(batch, num_tokens, dims, inputs[1].toIValue(),
                              inputs[2].toIValue())


def _sdpa_jit(inputs, outputs) -> int:
    return sdpa_macs(*(_jit_shape(v) for v in inputs[:3]))


def _no_flops(inputs, outputs) -> int:
    return 0


# ------------------------------------------------- torch's FlopCounterMode
def _cluster_order_flop(x_shape,
                        cluster_size=49,
                        num_iters=2,
                        *args,
                        **kwargs) -> int:
    return 2 * cluster_order_macs(*x_shape, cluster_size, num_iters)


def _sdpa_flop(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    return 2 * sdpa_macs(query_shape, key_shape, value_shape)


_registered = False


def register_flop_counting() -> None:
    """Register the formulas above with both counters (idempotent)."""
    global _registered
    if _registered:
        return
    from mmengine.analysis import complexity_analysis
    from mmengine.analysis.jit_handles import generic_activation_jit
    complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS.update({
        'mmboat::cluster_order':
        _cluster_order_jit,
        'aten::scaled_dot_product_attention':
        _sdpa_jit,
    })
    complexity_analysis._DEFAULT_SUPPORTED_ACT_OPS.update({
        'mmboat::cluster_order':
        generic_activation_jit(),
        'aten::scaled_dot_product_attention':
        generic_activation_jit(),
    })
    for table in (complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS,
                  complexity_analysis._DEFAULT_SUPPORTED_ACT_OPS):
        table.update({name: _no_flops for name in _GATHER_FUNCTIONS})
    register_flop_formula(torch.ops.mmboat.cluster_order)(_cluster_order_flop)
    aten = torch.ops.aten
    # CPU attention kernel, absent from the counter's own table
    if hasattr(aten, '_scaled_dot_product_flash_attention_for_cpu'):
        register_flop_formula(
            aten._scaled_dot_product_flash_attention_for_cpu)(
                _sdpa_flop)
    _registered = True
