"""Training-time additions to MMEngine, registered in its root registries
(``HOOKS``, ``LOOPS``, ``RUNNERS``) so that mmdet, mmseg and mmpretrain
configs find them once ``mmboat`` is imported (``custom_imports``)."""
from .hooks import ExactResumeHook
from .loops import ExactResumeEpochBasedTrainLoop
from .runner import SafeCheckpointRunner

__all__ = [
    'ExactResumeHook', 'ExactResumeEpochBasedTrainLoop', 'SafeCheckpointRunner'
]
