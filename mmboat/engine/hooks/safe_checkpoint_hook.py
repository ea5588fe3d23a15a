"""Let any MMEngine ``Runner`` load checkpoints safely on torch >= 2.6 and
refuse weights that do not fit.

MMEngine 0.10 reads ``load_from`` and ``resume`` checkpoints with a plain
``torch.load``, which since torch 2.6 means ``weights_only=True``: it
refuses what MMEngine itself writes (``HistoryBuffer``, numpy arrays), so
resuming fails (open-mmlab/mmengine#1655). :class:`SafeCheckpointHook` opens,
from ``before_run`` until the loop starts, torch's own allowlist
(``torch.serialization.safe_globals``) for exactly those objects: MMEngine's
read then succeeds and a foreign pickle still runs no code. Before that,
``load_from`` is read once by :func:`read_checkpoint` (a clear error for a
missing file, a non-checkpoint, an official release file to convert) and
checked (:func:`check_model_fits`): weights that hold NaN or Inf are
refused, and so are weights that do not fit the model unless the config
sets ``allow_partial_load``.

It is a hook, not a runner, so that it also acts under the tools that build
``Runner.from_cfg`` whatever the config's ``runner_type`` (mmseg's
``test.py``). mmboat's configs declare it as a default hook, which child
configs inherit key by key::

    default_hooks = dict(safe_checkpoint=dict(type='SafeCheckpointHook'))
"""
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from mmboat.utils.checkpoint import PARTIAL_LOAD_KEY, check_model_fits
from mmboat.utils.mmengine_compat import MMENGINE_SAFE_GLOBALS, read_checkpoint


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Safe ``load_from`` / ``resume`` for MMEngine's Runner (see module)."""

    priority = 'VERY_HIGH'

    def __init__(self):
        self._allowlist = None

    def before_run(self, runner) -> None:
        load_from = runner.cfg.get('load_from')
        if load_from and not runner.cfg.get('resume', False):
            model = runner.model.module if is_model_wrapper(
                runner.model) else runner.model
            check_model_fits(
                model,
                read_checkpoint(load_from),
                load_from,
                revise_keys=((r'^module.', ''), ),
                allow_partial=bool(runner.cfg.get(PARTIAL_LOAD_KEY, False)))
        self._close()
        self._allowlist = torch.serialization.safe_globals(
            MMENGINE_SAFE_GLOBALS)
        self._allowlist.__enter__()

    def _close(self, *args, **kwargs) -> None:
        """Close the allowlist: the checkpoint is loaded once a loop runs."""
        if self._allowlist is not None:
            self._allowlist.__exit__(None, None, None)
            self._allowlist = None

    before_train = before_val = before_test = after_run = _close
