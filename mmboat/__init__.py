from .utils.mmengine_compat import register_checkpoint_loader
from .version import __version__

# MMEngine 0.10 cannot load its own checkpoints on torch >= 2.6 otherwise.
register_checkpoint_loader()

from . import models  # noqa: E402,F401  (registers the backbones)

__all__ = ['__version__']
