"""Reading checkpoints safely, MMEngine compatibility, the tools' command
lines, distributed and timing helpers. Nothing here imports the rest of
mmboat: the modules above it build on these."""
from .checkpoint import (CheckpointError, CheckpointFormats,
                         CheckpointNotFoundError, OpaqueObject,
                         UnsafeCheckpointError, check_model_fits, key_report,
                         load_checkpoint_file, use_checkpoint_formats)

__all__ = [
    'CheckpointError', 'CheckpointFormats', 'CheckpointNotFoundError',
    'OpaqueObject', 'UnsafeCheckpointError', 'check_model_fits', 'key_report',
    'load_checkpoint_file', 'use_checkpoint_formats'
]
