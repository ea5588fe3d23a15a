"""ONNX export (mmboat.deployment.onnx) and torch.export of FSLA and both
backbones: onnxruntime (CPU) matches eager PyTorch, the batch is dynamic,
another H x W is refused, and the command line works on a tiny config."""
import os
import shlex

import numpy as np
import pytest
import torch
import torch.nn as nn

from mmboat.deployment import (BackboneForExport, OnnxModel, OnnxSizeError,
                               export_backbone_onnx, export_onnx,
                               max_abs_diffs)
from mmboat.models.backbones import BOATCSWinTransformer, BOATSwinTransformer
from mmboat.models.layers import FeatureSpaceLocalAttention
from tests.helpers import REPO_ROOT, doc_block, load_tool

ort = pytest.importorskip('onnxruntime')

# float32, random weights: the differences measured are about 1e-6
ATOL = 1e-5


class FSLAForExport(nn.Module):

    def __init__(self, fsla, hw):
        super().__init__()
        self.fsla, self.hw = fsla, hw

    def forward(self, x):
        return self.fsla(x, self.hw)


class ClusterOrder(nn.Module):

    def __init__(self, cluster_size):
        super().__init__()
        self.cluster_size = cluster_size

    def forward(self, x):
        return torch.ops.mmboat.cluster_order(x, self.cluster_size, 2, 100.)


# (H, W, cluster size): N = 35 and 144 are not S * 2**L (padding), N = 20
# is a single cluster (N <= S), N = 64 = 8 * 2**3 has no padding
FSLA_SIZES = [(5, 7, 8), (4, 5, 49), (12, 12, 8), (8, 8, 8)]


@pytest.mark.parametrize('H,W,S', FSLA_SIZES)
def test_clustering_onnx_chooses_the_same_clusters(tmp_path, H, W, S):
    torch.manual_seed(H * W)
    path = export_onnx(
        ClusterOrder(S), (torch.randn(1, H * W, 8), ), tmp_path / 'order.onnx')
    model = OnnxModel(path)
    for B in (1, 2, 3):
        x = torch.randn(B, H * W, 8)
        order, = model(x)
        assert np.array_equal(order, ClusterOrder(S)(x).numpy())


@pytest.mark.parametrize('H,W,S', FSLA_SIZES)
def test_fsla_onnx_matches_eager_at_any_batch(tmp_path, H, W, S):
    torch.manual_seed(0)
    fsla = FeatureSpaceLocalAttention(32, 2, cluster_size=S, overlap=3)
    module = FSLAForExport(fsla, (H, W)).eval()
    path = export_onnx(module, (torch.randn(1, H * W, 32), ),
                       tmp_path / 'fsla.onnx')
    model = OnnxModel(path)
    inputs = model.session.get_inputs()[0]
    assert isinstance(inputs.shape[0], str)  # batch dynamic
    assert inputs.shape[1:] == [H * W, 32]  # tokens fixed
    for B in (1, 2):
        x = torch.randn(B, H * W, 32)
        with torch.no_grad():
            expected = module(x)
        diff, = max_abs_diffs(model(x), [expected])
        assert diff < ATOL
    # another number of tokens: onnxruntime refuses the fixed dimension
    with pytest.raises(Exception, match=f'Expected: {H * W}'):
        model(torch.randn(1, H * W + 1, 32))


@pytest.mark.parametrize('strict', [False, True])
def test_torch_export_fsla_one_graph_matches_eager(strict):
    torch.manual_seed(0)
    module = FSLAForExport(
        FeatureSpaceLocalAttention(32, 2, cluster_size=8, overlap=3),
        (5, 7)).eval()
    x = torch.randn(2, 35, 32)
    program = torch.export.export(module, (x, ), strict=strict)
    ops = [str(n.target) for n in program.graph.nodes]
    assert ops.count('mmboat.cluster_order.default') == 1
    with torch.no_grad():
        assert torch.allclose(program.module()(x), module(x), atol=1e-6)
        # eager still works after the export (no traced layout cached)
        module(torch.randn(1, 35, 32))


SWIN = (BOATSwinTransformer,
        dict(embed_dims=32, depths=(2, 2, 2, 2),
             num_heads=(1, 2, 4, 8)), (64, 96))
CSWIN = (BOATCSWinTransformer,
         dict(
             embed_dims=16,
             depths=(1, 2, 2, 1),
             num_heads=(2, 2, 4, 8),
             split_sizes=(1, 2, 7, 7)), (60, 76))


def small_backbone(family):
    cls, arch, hw = family
    torch.manual_seed(0)
    backbone = cls(arch=arch)
    backbone.init_weights()
    return backbone.eval(), hw


@pytest.mark.parametrize('strict', [False, True])
@pytest.mark.parametrize(
    'family', [SWIN, CSWIN], ids=['BOAT-Swin', 'BOAT-CSWin'])
def test_torch_export_backbones_one_graph_matches_eager(family, strict):
    backbone, hw = small_backbone(family)
    module = BackboneForExport(backbone, hw)
    x = torch.randn(2, 3, *hw)
    program = torch.export.export(module, (x, ), strict=strict)
    assert any('mmboat.cluster_order' in str(n.target)
               for n in program.graph.nodes)
    with torch.no_grad():
        for got, expected in zip(program.module()(x), module(x)):
            assert torch.allclose(got, expected, atol=1e-5)


@pytest.fixture(
    scope='module', params=[SWIN, CSWIN], ids=['BOAT-Swin', 'BOAT-CSWin'])
def exported_backbone(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp('onnx')
    if request.param is SWIN:
        # the example of docs/deployment.md, run here (not by test_docs.py):
        # it exports this backbone at this size to boat.onnx
        scope, cwd = {}, os.getcwd()
        os.chdir(folder)
        try:
            exec(
                doc_block('docs/deployment.md', 'export_backbone_onnx('),
                scope)
        finally:
            os.chdir(cwd)
        backbone, (cls, arch, hw) = scope['backbone'], SWIN
        assert type(backbone) is cls
        assert {k: backbone.arch[k] for k in arch} == arch
        return backbone, hw, OnnxModel(folder / 'boat.onnx')
    backbone, hw = small_backbone(request.param)
    path = export_backbone_onnx(backbone, hw, folder / 'backbone.onnx')
    return backbone, hw, OnnxModel(path)


@pytest.mark.slow
def test_backbone_onnx_matches_eager_at_any_batch(exported_backbone):
    # exported from a batch of 1, run at 1 and 2
    backbone, hw, model = exported_backbone
    assert model.input_hw == hw
    assert [o.name for o in model.session.get_outputs()] == \
        ['out0', 'out1', 'out2', 'out3']
    for B in (1, 2, 0):
        x = torch.randn(B, 3, *hw)
        with torch.no_grad():
            expected = backbone(x)
        got = model(x)
        assert [g.shape for g in got] == [tuple(e.shape) for e in expected]
        if B:
            assert max(max_abs_diffs(got, expected)) < ATOL


@pytest.mark.slow
def test_backbone_onnx_refuses_another_size(exported_backbone):
    _, (H, W), model = exported_backbone
    x = np.zeros((1, 3, H + 32, W), np.float32)
    with pytest.raises(OnnxSizeError, match=f'exported for {H} x {W}'):
        model(x)
    # the graph itself: fixed height and width, onnxruntime refuses
    with pytest.raises(Exception, match=f'Got: {H + 32} Expected: {H}'):
        model.session.run(None, {model.input_name: x})
    with pytest.raises(OnnxSizeError, match=f'--shape {H + 32} {W}'):
        BackboneForExport(nn.Identity(), (H, W))(torch.from_numpy(x))


@pytest.mark.slow
def test_export_onnx_tool_on_a_tiny_config(tmp_path, capsys):
    main = load_tool(REPO_ROOT / 'tools' / 'deployment' /
                     'export_onnx.py').main
    out = tmp_path / 'nano.onnx'
    main([
        str(REPO_ROOT / 'configs/tiny/boat-swin-nano_tiny-shapes.py'),
        '--shape', '64', '64', '--out',
        str(out), '--repeats', '1'
    ])
    text = capsys.readouterr().out
    assert out.is_file()
    diffs = [
        float(line.rsplit(' ', 1)[1]) for line in text.splitlines()
        if 'max abs difference' in line
    ]
    assert diffs and max(diffs) < ATOL, text
    assert f'written: {out}' in text and 'CPU latency' in text
    assert OnnxModel(out).input_hw == (64, 64)


@pytest.mark.slow
def test_export_onnx_tool_whole_segmentor_matches_eager(tmp_path, capsys):
    # the command of docs/deployment.md (run here, not by test_docs.py):
    # the whole tiny UperNet (test forward in tensor mode: seg logits), on a
    # tiny-shapes image through the config's pipeline
    command = shlex.split(
        doc_block('docs/deployment.md',
                  '--shape 64 96 --whole-model').replace('\\\n', ''))
    assert command[:2] == [
        '.venv/bin/python', 'tools/deployment/export_onnx.py'
    ], command
    assert command[2:] == [
        'configs/tiny/upernet_boat-cswin-nano_tiny-shapes.py', '--shape', '64',
        '96', '--whole-model'
    ], command
    main = load_tool(REPO_ROOT / command[1]).main
    out = tmp_path / 'upernet.onnx'
    cwd = os.getcwd()
    os.chdir(REPO_ROOT)
    try:
        main(command[2:] + ['--out', str(out), '--repeats', '0'])
    finally:
        os.chdir(cwd)
    text = capsys.readouterr().out
    lines = [
        line for line in text.splitlines() if 'max abs difference' in line
    ]
    # one output: (1, classes, H / 4, W / 4) logits
    assert len(lines) == 1 and lines[0].startswith('out0 (1, 5, 16, 24)'), text
    assert float(lines[0].rsplit(' ', 1)[1]) < 1e-4, text
    logits = OnnxModel(out)(np.zeros((2, 3, 64, 96), np.float32))
    assert logits[0].shape == (2, 5, 16, 24)


def test_export_onnx_tool_refuses_a_whole_detector(capsys):
    main = load_tool(REPO_ROOT / 'tools' / 'deployment' /
                     'export_onnx.py').main
    with pytest.raises(SystemExit, match='need mmdeploy: export its backbone'):
        main([
            str(REPO_ROOT /
                'configs/tiny/mask-rcnn_boat-swin-nano_fpn_tiny-shapes.py'),
            '--shape', '64', '64', '--whole-model'
        ])


@pytest.mark.parametrize('case,message', [
    ('opset-7', 'opset 7 is not supported: .* writes opsets 18 to'),
    ('opset-99', 'opset 99 is not supported'),
    ('out-folder', 'is a folder: give the path of the .onnx file'),
])
def test_export_onnx_tool_checks_before_any_work(tmp_path, case, message):
    """Refused before the config is even read (a missing config would be
    named otherwise); nothing is written."""
    main = load_tool(REPO_ROOT / 'tools' / 'deployment' /
                     'export_onnx.py').main
    out = tmp_path / 'x.onnx'
    extra = ['--out', str(out)]
    if case.startswith('opset'):
        extra += ['--opset', case.split('-')[1]]
    else:
        out.mkdir()
    with pytest.raises(SystemExit, match=message):
        main([str(tmp_path / 'no-config.py'), '--shape', '8', '8', *extra])
    assert [p.name for p in tmp_path.iterdir()] == \
        (['x.onnx'] if case == 'out-folder' else [])


def test_a_failed_export_leaves_no_file(tmp_path, monkeypatch):
    """A late failure (here: the exporter dies after writing part of the
    file) leaves neither a file nor its partial; an older file at the path
    stays."""
    out = tmp_path / 'model.onnx'
    out.write_bytes(b'an older export')

    def dies(program, args, path, **kwargs):
        with open(path, 'wb') as f:
            f.write(b'half a model')
        raise RuntimeError('exporter died')

    monkeypatch.setattr(torch.onnx, 'export', dies)
    with pytest.raises(RuntimeError, match='exporter died'):
        export_onnx(nn.Conv2d(3, 4, 3), (torch.randn(1, 3, 8, 8), ), out)
    assert [p.name for p in tmp_path.iterdir()] == ['model.onnx']
    assert out.read_bytes() == b'an older export'
