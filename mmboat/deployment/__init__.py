from .onnx import (BackboneForExport, ModelForExport, OnnxModel, OnnxSizeError,
                   export_backbone_onnx, export_onnx, export_program,
                   max_abs_diffs, onnx_translations)

__all__ = [
    'BackboneForExport', 'ModelForExport', 'OnnxModel', 'OnnxSizeError',
    'export_backbone_onnx', 'export_onnx', 'export_program', 'max_abs_diffs',
    'onnx_translations'
]
