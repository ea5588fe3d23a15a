"""Reading checkpoints safely, MMEngine compatibility, the tools' command
lines, distributed and timing helpers, the environment report
(:func:`collect_env`). Nothing here imports the rest of
mmboat: the modules above it build on these."""
from .checkpoint import (CheckpointError, CheckpointFormats,
                         CheckpointNotFoundError, OpaqueObject,
                         UnsafeCheckpointError, check_model_fits, key_report,
                         load_checkpoint_file, use_checkpoint_formats)
from .collect_env import collect_env, register_env_info

__all__ = [
    'CheckpointError', 'CheckpointFormats', 'CheckpointNotFoundError',
    'OpaqueObject', 'UnsafeCheckpointError', 'check_model_fits', 'key_report',
    'collect_env', 'load_checkpoint_file', 'register_env_info',
    'use_checkpoint_formats'
]
