from .checkpoint import (CheckpointError, OpaqueObject, key_report,
                         load_backbone_weights, load_checkpoint_file)

__all__ = [
    'CheckpointError', 'OpaqueObject', 'key_report', 'load_backbone_weights',
    'load_checkpoint_file'
]
