from .checkpoint import (CheckpointError, CheckpointNotFoundError,
                         OpaqueObject, UnsafeCheckpointError, check_model_fits,
                         key_report, load_backbone_weights,
                         load_checkpoint_file)

__all__ = [
    'CheckpointError', 'CheckpointNotFoundError', 'OpaqueObject',
    'UnsafeCheckpointError', 'check_model_fits', 'key_report',
    'load_backbone_weights', 'load_checkpoint_file'
]
