"""A Runner that loads checkpoints safely and checks that they fit."""
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmboat.utils.checkpoint import PARTIAL_LOAD_KEY
from mmboat.utils.mmengine_compat import load_weights_into


@RUNNERS.register_module()
class SafeCheckpointRunner(Runner):
    """MMEngine's ``Runner`` whose ``load_from`` and ``resume`` read a
    checkpoint with ``weights_only=True`` (allowing exactly what MMEngine
    itself writes, so that its checkpoints load on torch >= 2.6 and a
    foreign pickle runs no code) and refuse weights that do not fit a model
    with an mmboat backbone unless the config sets ``allow_partial_load``
    (:func:`mmboat.utils.mmengine_compat.load_weights_into`).

    mmboat's configs select it, ``runner_type = 'SafeCheckpointRunner'``;
    the ``train.py`` / ``test.py`` of mmboat, mmdet, mmseg and mmpretrain
    build ``runner_type`` from ``RUNNERS``. The rest is MMEngine's Runner.
    """

    def load_checkpoint(self,
                        filename: str,
                        map_location='cpu',
                        strict: bool = False,
                        revise_keys=((r'^module.', ''), )):
        """MMEngine 0.10's method (read, ``after_load_checkpoint`` hooks,
        load into the model) with the safe read and the fit check."""
        model = self.model.module if is_model_wrapper(self.model) \
            else self.model
        checkpoint = load_weights_into(
            model,
            filename,
            map_location=map_location,
            strict=strict,
            revise_keys=revise_keys,
            allow_partial=bool(self.cfg.get(PARTIAL_LOAD_KEY, False)),
            before_load=lambda ckpt: self.call_hook(
                'after_load_checkpoint', checkpoint=ckpt))
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint
