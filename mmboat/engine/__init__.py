"""Training-time additions to MMEngine, registered in its root registries
(``HOOKS``) so that mmdet, mmseg and mmpretrain configs find them once
``mmboat.engine`` is imported (``custom_imports``)."""
from .hooks import ExactResumeHook

__all__ = ['ExactResumeHook']
