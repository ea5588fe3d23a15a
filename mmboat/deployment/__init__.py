from .onnx import (BackboneForExport, ModelForExport, OnnxModel, OnnxSizeError,
                   export_backbone_onnx, export_onnx, export_program,
                   max_abs_diffs, onnx_translations)
from .stock_export import register_stock_exporters

# torch.onnx.export(backbone, ..., dynamo=True) lowers FSLA's clustering op
register_stock_exporters()

__all__ = [
    'BackboneForExport', 'ModelForExport', 'OnnxModel', 'OnnxSizeError',
    'export_backbone_onnx', 'export_onnx', 'export_program', 'max_abs_diffs',
    'onnx_translations', 'register_stock_exporters'
]
