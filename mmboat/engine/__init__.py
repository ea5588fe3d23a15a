"""Training-time additions to MMEngine, registered in its root registries
(``HOOKS``, ``LOOPS``) so that mmdet, mmseg and mmpretrain
configs find them once ``mmboat`` is imported (``custom_imports``)."""
from .hooks import ExactResumeHook, FiniteCheckHook, SafeCheckpointHook
from .loops import ExactResumeEpochBasedTrainLoop

__all__ = [
    'ExactResumeHook', 'ExactResumeEpochBasedTrainLoop', 'FiniteCheckHook',
    'SafeCheckpointHook'
]
