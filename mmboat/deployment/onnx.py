"""ONNX export of the BOAT backbones and of FSLA.

The clustering of FSLA is a custom op (``mmboat::cluster_order``) that
``torch.export`` keeps as one node. :func:`export_program` exports a module
with ``torch.export`` (batch dynamic, every other size fixed) and lowers
that node to standard aten ops with
:func:`~mmboat.ops.cluster_order.cluster_order_decomposition`, the
op's own implementation with a stable float sort instead of the radix sort
of packed integer keys. :func:`export_onnx` translates the result with
``torch.onnx.export`` (the dynamo exporter), a stable sort becoming ONNX
``TopK`` (stable by the ONNX spec: equal values keep the lower index
first), and records the input size in the model's metadata.

Sizes: the cluster layout of every FSLA block (how many levels, which slots
are padding) depends on its number of tokens, so it is frozen into the
graph for the H x W of the export. The ONNX input has a dynamic batch and
fixed height and width: onnxruntime refuses another size ("Got invalid
dimensions for input"), and :class:`OnnxModel` refuses it first with the
export size and the fix (export again at that size).

    from mmboat.deployment import BackboneForExport, OnnxModel, export_onnx
    export_onnx(BackboneForExport(backbone, (224, 224)),
                (torch.randn(1, 3, 224, 224), ), 'boat.onnx')
    feats = OnnxModel('boat.onnx')(image)  # (B, 3, 224, 224) -> list
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmboat.ops import EXPORT_DECOMPOSITIONS

HWShape = Tuple[int, int]
#: metadata key of the exported input size, "H,W"
INPUT_HW_KEY = 'mmboat.input_hw'
DEFAULT_OPSET = 18

#: the opsets mmboat's export writes: torch's exporter builds opset 18
#: graphs and converts them to a newer opset; older ones it cannot reach
#: (it would silently write 18). The newest is what the installed onnx and
#: onnxruntime handle (measured: tools/deployment/export_onnx.py)
MIN_OPSET = 18


def supported_opsets() -> range:
    """The opsets :func:`export_onnx` can write with the installed onnx."""
    import onnx
    return range(MIN_OPSET, onnx.defs.onnx_opset_version() + 1)


def check_opset(opset: int) -> None:
    """Refuse an opset :func:`export_onnx` cannot write, before any work."""
    opsets = supported_opsets()
    if isinstance(opset, bool) or not isinstance(opset, int) or \
            opset not in opsets:
        raise ValueError(
            f'opset {opset!r} is not supported: torch\'s ONNX exporter '
            f'writes opsets {opsets.start} to {opsets.stop - 1} (with the '
            f'installed onnx); the default is {DEFAULT_OPSET}')


def check_onnx_path(path: Union[str, os.PathLike]) -> str:
    """``path`` must name a file (in a folder that exists or can be
    made), not a folder."""
    path = str(path)
    if osp.isdir(path) or path.endswith(os.sep):
        raise ValueError(f'{path} is a folder: give the path of the .onnx '
                         'file to write')
    folder = osp.dirname(osp.abspath(path))
    while not osp.exists(folder):
        folder = osp.dirname(folder)
    if not osp.isdir(folder):
        raise ValueError(f'cannot write {path}: {folder} is a file')
    return path


class OnnxSizeError(ValueError):
    """An input of another H x W than the one the model was exported at."""


def size_message(export_hw: HWShape, got_hw: HWShape) -> str:
    H, W = export_hw
    h, w = got_hw
    return (f'this model was exported for {H} x {W} inputs and got {h} x '
            f'{w}: the cluster layout of every FSLA block is frozen into the '
            f'graph for the export size (only the batch is dynamic). Resize '
            f'or pad the input to {H} x {W}, or export again with '
            f'--shape {h} {w} (tools/deployment/export_onnx.py).')


class BackboneForExport(nn.Module):
    """A backbone as an exported graph sees it: (B, 3, H, W) images of the
    export size -> a tuple of feature maps.

    The size check runs when the module is called or traced (at the export
    size it passes); in the exported graph the height and width are fixed
    dimensions of the input, which onnxruntime checks.
    """

    def __init__(self, net: nn.Module, input_hw: HWShape):
        super().__init__()
        self.net = net
        self.input_hw = tuple(int(s) for s in input_hw)

    def forward(self, image: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if tuple(image.shape[-2:]) != self.input_hw:
            raise OnnxSizeError(
                size_message(self.input_hw, tuple(image.shape[-2:])))
        return self.run(image)

    def run(self, image: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return tuple(self.net(image))


class ModelForExport(BackboneForExport):
    """A whole segmentor (mmseg) or classifier (mmpretrain) as an exported
    graph sees it: its test forward in ``tensor`` mode on preprocessed
    (B, 3, H, W) images -> ``(seg_logits,)`` (B, K, H', W') at the decode
    head's resolution, or ``(logits,)`` (B, K). A detector's test forward
    (RoI ops, NMS, post-processing) is mmdeploy's job: export its backbone.
    """

    def run(self, image: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        out = self.net(image, mode='tensor')
        return tuple(out) if isinstance(out, (list, tuple)) else (out, )


def export_program(module: nn.Module,
                   example: Tuple[torch.Tensor, ...],
                   strict: bool = False) -> torch.export.ExportedProgram:
    """``torch.export`` of ``module`` in eval mode, batch (dim 0 of every
    tensor input) dynamic, FSLA's clustering op lowered to aten ops.

    An example batch of 1 is traced as 2 (torch.export specialises a size
    of 1); the program runs at any batch size.
    """
    example = tuple(
        t.expand(2, *t.shape[1:]).contiguous(
        ) if isinstance(t, torch.Tensor) and t.shape[0] == 1 else t
        for t in example)
    batch = torch.export.Dim('batch', min=1, max=4096)
    dynamic = tuple({0: batch} if isinstance(t, torch.Tensor) else None
                    for t in example)
    with torch.no_grad():
        program = torch.export.export(
            module.eval(), example, dynamic_shapes=dynamic, strict=strict)
    return program.run_decompositions(EXPORT_DECOMPOSITIONS)


def _aten_sort_stable(self,
                      stable=None,
                      dim: int = -1,
                      descending: bool = False):
    """``aten::sort.stable`` as ONNX ``TopK`` of the whole axis (stable by
    the spec: of equal values the lower index comes first)."""
    from onnxscript import opset18 as op
    k = op.Shape(
        self, start=dim) if dim == -1 else op.Shape(
            self, start=dim, end=dim + 1)
    values, indices = op.TopK(
        self, k, axis=dim, largest=int(descending), sorted=1)
    return values, indices


def onnx_translations() -> dict:
    """The ``custom_translation_table`` of :func:`export_onnx`."""
    return {torch.ops.aten.sort.stable: _aten_sort_stable}


def export_onnx(module: nn.Module,
                example: Tuple[torch.Tensor, ...],
                path: Union[str, os.PathLike],
                opset: int = DEFAULT_OPSET,
                input_names: Sequence[str] = ('input', ),
                output_names: Optional[Sequence[str]] = None,
                metadata: Optional[Dict[str, str]] = None) -> str:
    """Write ``module`` as one ONNX file (weights inside) at ``path``.

    Batch dynamic, every other dimension fixed at the example's
    (:func:`export_program`). ``metadata`` goes to the model's
    ``metadata_props``; an input of 4 dims records its H x W under
    :data:`INPUT_HW_KEY` too. Returns the path.

    ``opset`` and ``path`` are checked first (:func:`check_opset`,
    :func:`check_onnx_path`). The file is written next to ``path`` and
    moved there only once complete and at the asked opset: a failure
    leaves no file, and an existing file at ``path`` stays as it was.
    """
    import onnx
    check_opset(opset)
    path = check_onnx_path(path)
    if osp.dirname(path):
        os.makedirs(osp.dirname(path), exist_ok=True)
    partial = f'{path}.partial'
    try:
        program = export_program(module, example)
        torch.onnx.export(
            program, (),
            partial,
            dynamo=True,
            opset_version=opset,
            input_names=list(input_names),
            output_names=None if output_names is None else list(output_names),
            custom_translation_table=onnx_translations(),
            external_data=False,
            verbose=False)
        model = onnx.load(partial)
        written = {
            o.version
            for o in model.opset_import if o.domain in ('', 'ai.onnx')
        }
        if written != {opset}:
            raise RuntimeError(
                f'torch\'s ONNX exporter wrote opset {sorted(written)} '
                f'instead of {opset} (its conversion failed: see the log '
                f'above); try opset {DEFAULT_OPSET}')
        metadata = dict(metadata or {})
        if example[0].dim() == 4:
            metadata.setdefault(
                INPUT_HW_KEY, ','.join(str(s) for s in example[0].shape[-2:]))
        for key, value in metadata.items():
            model.metadata_props.add(key=key, value=str(value))
        onnx.save(model, partial)
        os.replace(partial, path)
    finally:
        if osp.exists(partial):
            os.remove(partial)
    return path


def export_backbone_onnx(backbone: nn.Module,
                         input_hw: HWShape,
                         path: Union[str, os.PathLike],
                         opset: int = DEFAULT_OPSET,
                         example: Optional[torch.Tensor] = None,
                         metadata: Optional[Dict[str, str]] = None,
                         whole_model: bool = False) -> str:
    """:func:`export_onnx` of a BOAT backbone for ``input_hw`` images:
    input ``input`` (B, 3, H, W), outputs ``out0``, ``out1``... (its
    ``out_indices``). ``whole_model``: ``backbone`` is a segmentor or
    classifier, exported whole (:class:`ModelForExport`), output ``out0``.
    """
    H, W = input_hw
    if example is None:
        example = torch.randn(1, 3, H, W)
    wrapper_cls = ModelForExport if whole_model else BackboneForExport
    wrapper = wrapper_cls(backbone, (H, W)).eval()
    with torch.no_grad():
        num_outputs = len(wrapper(example[:1]))
    return export_onnx(
        wrapper, (example, ),
        path,
        opset,
        output_names=[f'out{i}' for i in range(num_outputs)],
        metadata=metadata)


class OnnxModel:
    """An ONNX file of :func:`export_onnx` on onnxruntime's CPU provider.

    Calling it with a tensor or array returns the outputs as numpy arrays.
    An image input of another H x W than the export size raises
    :class:`OnnxSizeError` naming the export size and the fix.
    """

    def __init__(self,
                 path: Union[str, os.PathLike],
                 threads: Optional[int] = None):
        import onnxruntime as ort
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(path), options, providers=['CPUExecutionProvider'])
        meta = self.session.get_modelmeta().custom_metadata_map
        hw = meta.get(INPUT_HW_KEY)
        self.input_hw = None if hw is None else tuple(
            int(s) for s in hw.split(','))
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, x: Union[torch.Tensor, np.ndarray]) -> List[np.ndarray]:
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        if self.input_hw is not None and tuple(x.shape[-2:]) != \
                self.input_hw:
            raise OnnxSizeError(size_message(self.input_hw, x.shape[-2:]))
        if x.shape[0] == 0:
            # onnxruntime fails on empty inputs: an empty batch of outputs
            return [
                np.zeros((0, *o.shape[1:]), np.float32)
                for o in self.session.get_outputs()
            ]
        return self.session.run(None, {self.input_name: x})


def max_abs_diffs(onnx_outputs: Sequence[np.ndarray],
                  torch_outputs: Sequence[torch.Tensor]) -> List[float]:
    """The max absolute difference of every output pair."""
    return [
        float(np.abs(o - t.detach().cpu().numpy()).max())
        for o, t in zip(onnx_outputs, torch_outputs, strict=True)
    ]


#: the image checked against when none is given: embedded tiny-shapes data
DEFAULT_IMAGE = 'data/tiny_shapes/coco/images/val/000000.jpg'


def default_image() -> str:
    """:data:`DEFAULT_IMAGE`, written first (tiny-shapes, seed 0, COCO
    format: ``tools/misc/make_tiny_datasets.py --tasks det``) if absent."""
    if not osp.isfile(DEFAULT_IMAGE):
        from mmboat.datasets import make_tiny_datasets
        make_tiny_datasets(
            DEFAULT_IMAGE.split('/coco/')[0], seed=0, tasks=['det'])
    return DEFAULT_IMAGE


def config_backbone_and_input(
        config,
        checkpoint: Optional[str] = None,
        image: Optional[str] = None,
        input_hw: Optional[HWShape] = None,
        whole_model: bool = False,
        allow_partial: bool = False) -> Tuple[nn.Module, torch.Tensor]:
    """The BOAT backbone of an mmdet / mmseg / mmpretrain config and one
    image as that backbone sees it.

    The model is built as :func:`mmboat.apis.build_inferencer` builds it
    (random weights), then ``checkpoint`` (a training checkpoint or a
    converted backbone file) is loaded into the backbone by
    :func:`mmboat.apis.load_model_weights`, the loader of every tool (the
    weights must fit unless ``allow_partial``). The
    image goes through the config's test pipeline and data preprocessor;
    if that gives another size than ``input_hw``, it is resized to it
    (bilinear).

    ``whole_model``: return the whole segmentor or classifier instead of
    its backbone (a detector is refused: export its backbone); its
    checkpoint is loaded whole by :func:`mmboat.apis.build_inferencer`.

    Returns:
        The backbone or model (eval mode) and a (1, 3, H, W) float32
        tensor.
    """
    from mmboat.apis import build_inferencer, load_model_weights
    from mmboat.models.backbones.base import BaseBOATBackbone
    if image is not None and not osp.isfile(str(image)):
        raise FileNotFoundError(f'image {image} does not exist')
    # a whole model loads all its weights (a training checkpoint) through
    # the library's inferencer; a backbone only its own (below)
    inferencer = build_inferencer(config, checkpoint if whole_model else None,
                                  'cpu', allow_partial)
    image = default_image() if image is None else str(image)
    net = inferencer.model
    backbone = getattr(net, 'backbone', None)
    if not isinstance(backbone, BaseBOATBackbone):
        raise ValueError(
            f'the model ({type(net).__name__}) has no BOAT backbone but '
            f'{type(backbone).__name__}; use an mmboat config')
    if whole_model and not hasattr(net, 'decode_head') and not hasattr(
            net, 'head'):
        raise ValueError(
            f'--whole-model exports segmentors (mmseg) and classifiers '
            f'(mmpretrain); {type(net).__name__} runs RoI ops and '
            'post-processing that need mmdeploy: export its backbone '
            '(without --whole-model) and run the neck and heads in PyTorch')
    if checkpoint is not None and not whole_model:
        load_model_weights(backbone, checkpoint, allow_partial)
    batch = next(iter(inferencer.preprocess([image], batch_size=1)))
    if isinstance(batch, (list, tuple)):  # mmdet: (originals, data)
        batch = batch[-1]
    with torch.no_grad():
        inputs = net.data_preprocessor(batch, False)['inputs'].float()
    if input_hw is not None and tuple(inputs.shape[-2:]) != tuple(input_hw):
        inputs = F.interpolate(
            inputs, size=tuple(input_hw), mode='bilinear', align_corners=False)
    return (net if whole_model else backbone).eval(), inputs
