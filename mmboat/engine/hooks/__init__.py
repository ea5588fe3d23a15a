from .exact_resume_hook import ExactResumeHook, get_rng_state, set_rng_state

__all__ = ['ExactResumeHook', 'get_rng_state', 'set_rng_state']
