"""The stock exporters on a bare BOAT backbone (issue 22): ``torch.export
.export`` and ``torch.onnx.export(..., dynamo=True)`` (which failed with
``DispatchError: No ONNX function found for mmboat.cluster_order``) work
once mmboat.deployment is imported, and the registration changes nothing
for eager mode and ``torch.compile``."""
import numpy as np
import torch

import mmboat.deployment  # noqa: F401  (registers the lowering)
from mmboat.deployment.stock_export import CLUSTER_ORDER


def _backbone():
    """One BOAT-Swin stage with FSLA; 64 x 64 images give 256 tokens, so
    the clustering op runs (4 leaves)."""
    from mmboat.models.backbones import BOATSwinTransformer
    torch.manual_seed(0)
    return BOATSwinTransformer(
        arch=dict(embed_dims=16, depths=(2, ), num_heads=(2, )),
        out_indices=(0, )).eval()


def test_lowering_is_registered_where_the_onnx_exporter_looks():
    from torch.onnx._internal.exporter import _decomp
    table = _decomp.create_onnx_friendly_decomposition_table(set())
    assert CLUSTER_ORDER in table


def test_stock_torch_export():
    model, x = _backbone(), torch.randn(1, 3, 64, 64)
    program = torch.export.export(model, (x, ))
    assert any(n.target == CLUSTER_ORDER for n in program.graph.nodes)
    with torch.no_grad():
        assert torch.equal(program.module()(x)[0], model(x)[0])


def test_compile_with_dynamic_shapes_keeps_the_op():
    """FakeTensor reads decomposition_table for ops traced with symbolic
    sizes: the registered entry gives the op's shape there."""
    from mmboat.models.layers import FeatureSpaceLocalAttention
    torch.manual_seed(0)
    fsla = FeatureSpaceLocalAttention(16, 2).eval()
    compiled = torch.compile(
        fsla, dynamic=True, fullgraph=True, backend='eager')
    for batch in (2, 3):
        x = torch.randn(batch, 256, 16)
        with torch.no_grad():
            assert torch.equal(compiled(x, (16, 16)), fsla(x, (16, 16)))


def test_stock_onnx_export(tmp_path):
    import onnxruntime as ort
    model = _backbone()
    torch.manual_seed(1)
    x = torch.randn(1, 3, 64, 64)
    path = tmp_path / 'boat.onnx'
    torch.onnx.export(model, (x, ), str(path), dynamo=True, verbose=False)
    session = ort.InferenceSession(
        str(path), providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    for seed in (1, 2):
        torch.manual_seed(seed)
        image = torch.randn(1, 3, 64, 64)
        got = session.run(None, {name: image.numpy()})[0]
        with torch.no_grad():
            expected = model(image)[0].numpy()
        assert np.abs(got - expected).max() < 1e-4


def test_inductor_compiles_the_op_with_ci_set(monkeypatch):
    """With ``CI`` set (GitHub Actions sets it), inductor refuses to make a
    fallback kernel for an op that has a decomposition; the registration
    declares the op's fallback, so ``torch.compile`` still works there."""
    monkeypatch.setenv('CI', 'true')
    torch._dynamo.reset()
    x = torch.randn(2, 100, 8)

    def order(t):
        return CLUSTER_ORDER(t.float() * 2, 25, 2, 100.)

    compiled = torch.compile(order, backend='inductor', fullgraph=True)
    with torch._inductor.config.patch(force_disable_caches=True):
        assert torch.equal(compiled(x), order(x))
    torch._dynamo.reset()
