from .checkpoint import CheckpointError, OpaqueObject, load_checkpoint_file

__all__ = ['CheckpointError', 'OpaqueObject', 'load_checkpoint_file']
