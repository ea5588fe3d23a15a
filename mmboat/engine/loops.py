"""Training loops registered in MMEngine's ``LOOPS``."""
from typing import Callable

from mmengine.registry import LOOPS
from mmengine.runner import EpochBasedTrainLoop


@LOOPS.register_module()
class ExactResumeEpochBasedTrainLoop(EpochBasedTrainLoop):
    """MMEngine's ``EpochBasedTrainLoop`` whose next epoch can start after
    its first ``done`` batches: :class:`ExactResumeHook` asks for it on a
    resume in the middle of an epoch (:meth:`skip_trained_batches`). The
    skipped batches are loaded and dropped, so that the data workers draw
    as in an uninterrupted run. Without such a request it runs as MMEngine's
    loop; the arguments are MMEngine's."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._resume_at = None  # (done, restore) for the next epoch

    def skip_trained_batches(self, done: int, restore: Callable) -> None:
        """Make the next epoch load and drop its first ``done`` batches,
        then call ``restore()`` and train the others."""
        self._resume_at = (done, restore)

    def run_epoch(self) -> None:
        if self._resume_at is None:
            return super().run_epoch()
        (done, restore), self._resume_at = self._resume_at, None
        runner = self.runner
        runner.call_hook('before_train_epoch')
        runner.model.train()
        if done < len(self.dataloader):
            batches = iter(self.dataloader)
            for _ in range(done):
                next(batches)
            restore()
            for idx, data_batch in enumerate(batches, start=done):
                self.run_iter(idx, data_batch)
        else:  # saved after the last batch: only the end of the epoch left
            restore()
        runner.call_hook('after_train_epoch')
        self._epoch += 1
