from .exact_resume_hook import ExactResumeHook, get_rng_state, set_rng_state
from .finite_check_hook import FiniteCheckHook
from .safe_checkpoint_hook import SafeCheckpointHook

__all__ = [
    'ExactResumeHook', 'FiniteCheckHook', 'SafeCheckpointHook',
    'get_rng_state', 'set_rng_state'
]
