from .utils.mmengine_compat import register_config_package
from .version import __version__

# MMEngine 0.10 cannot load configs that inherit mmboat's otherwise
# (`_base_ = 'mmboat::...'`).
register_config_package()

from . import datasets  # noqa: E402,F401  (registers the stream)
from . import engine  # noqa: E402,F401  (registers the hook, loop, runner)
from . import models  # noqa: E402,F401  (registers the backbones)
from .analysis import register_flop_counting  # noqa: E402

# FLOP counters (MMEngine's, torch's) count FSLA's clustering and attention.
register_flop_counting()

__all__ = ['__version__']
