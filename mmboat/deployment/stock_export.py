"""The stock exporters on a bare BOAT backbone.

``torch.export.export(backbone, (x, ))`` needs nothing: FSLA's clustering
is one node, ``mmboat::cluster_order``, which has a fake implementation,
and the program runs in PyTorch.

``torch.onnx.export(backbone, (x, ), f, dynamo=True)`` translates every
node to ONNX, and an op that has no ONNX function is first lowered with the
decompositions of ``torch._decomp.decomposition_table`` (the exporter's
``create_onnx_friendly_decomposition_table``). :func:`register_stock_exporters`
(run when :mod:`mmboat.deployment` is imported) adds there the lowering of
``mmboat::cluster_order`` to standard aten ops: the op's own
:func:`~mmboat.ops.cluster_order.cluster_order_decomposition`, its stable
sorts written as ``topk`` over the whole axis, which the exporter
translates to ONNX ``TopK`` (stable by the ONNX spec: of equal values the
lower index comes first), as mmboat's own export does
(:func:`mmboat.deployment.export_onnx`). The exported model computes the
same clusters; its H x W is fixed at the example's (the cluster layout
depends on the number of tokens), its batch as the exporter's
``dynamic_shapes`` say.

Only decompositions consult that table: in eager mode, ``torch.compile``
and ``torch.export`` the op stays one node. (FakeTensor also reads it for
ops traced with symbolic sizes: there it gives the op's output shape, as
the op's fake implementation does.)

:func:`mmboat.deployment.export_backbone_onnx` (and
``tools/deployment/export_onnx.py``) remains the checked path: it records
the input size, checks the opset and writes no partial file.
"""
import torch
import torch._decomp
from torch.overrides import TorchFunctionMode

from mmboat.ops import EXPORT_DECOMPOSITIONS, num_cluster_levels

#: the clustering op
CLUSTER_ORDER = torch.ops.mmboat.cluster_order.default

_SORTS = {torch.sort, torch.argsort, torch.Tensor.sort, torch.Tensor.argsort}


def _stable_sort_as_topk(func, args, kwargs):
    """``sort`` / ``argsort(x, dim, descending, stable=True)`` as ``topk``
    of the whole axis; None for any other call."""
    if func not in _SORTS or not kwargs.get('stable'):
        return None
    x = args[0]
    dim = kwargs.get('dim', args[1] if len(args) > 1 else -1)
    descending = kwargs.get('descending', False)
    values, indices = torch.topk(
        x, x.shape[dim], dim=dim, largest=bool(descending), sorted=True)
    if func in (torch.argsort, torch.Tensor.argsort):
        return indices
    return torch.return_types.sort((values, indices))


class _StableSortsAsTopK(TorchFunctionMode):
    """Trace stable sorts as ``topk``, which ONNX translates (``TopK``)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = _stable_sort_as_topk(func, args, kwargs)
        return func(*args, **kwargs) if out is None else out


def _tracing_decompositions() -> bool:
    """Whether a decomposition is being traced into a graph (the proxy mode
    of ``make_fx`` / ``run_decompositions`` is on), rather than asked by
    FakeTensor for an output shape."""
    key = torch._C._TorchDispatchModeKey.PROXY
    return torch._C._get_dispatch_mode(key) is not None


def stock_cluster_order_decomposition(x: torch.Tensor,
                                      cluster_size: int = 49,
                                      num_iters: int = 2,
                                      temperature: float = 100.):
    """``mmboat::cluster_order`` in aten ops that the stock ONNX exporter
    translates (see the module docstring)."""
    if not _tracing_decompositions():
        # FakeTensor with symbolic sizes: the op's output shape only
        B, N, _ = x.shape
        G = 2**num_cluster_levels(N, cluster_size)
        return x.new_empty(B, G, (N + G - 1) // G, dtype=torch.long)
    decomposition = EXPORT_DECOMPOSITIONS[CLUSTER_ORDER]
    with _StableSortsAsTopK():
        return decomposition(x, cluster_size, num_iters, temperature)


def _register_inductor_fallback() -> None:
    """Tell inductor (``torch.compile``) to run the op as a fallback
    kernel, as it does any custom op without a lowering. Inductor decides
    that by itself otherwise, but then, with the environment variable
    ``CI`` set (GitHub Actions sets it), refuses an op that has a
    decomposition ("make_fallback(...): a decomposition exists"), which
    the entry of :func:`register_stock_exporters` gives it."""
    from torch._inductor import lowering
    from torch._library.utils import get_layout_constraint_tag
    if CLUSTER_ORDER in lowering.lowerings:
        return
    tag = get_layout_constraint_tag(CLUSTER_ORDER, with_default=True)
    lowering.make_fallback(
        CLUSTER_ORDER,
        layout_constraint=lowering.tag_to_layout_constraint(tag),
        warn=False)


def register_stock_exporters() -> None:
    """Let ``torch.onnx.export(..., dynamo=True)`` lower the clustering op
    (see the module docstring), and ``torch.compile`` keep it one fallback
    kernel. Idempotent; an entry someone else put there for the op is
    kept."""
    torch._decomp.decomposition_table.setdefault(
        CLUSTER_ORDER, stock_cluster_order_decomposition)
    _register_inductor_fallback()
