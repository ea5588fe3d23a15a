from . import backbones  # noqa: F401  (registers the backbones)
from . import classifiers  # noqa: F401  (registers the classifiers)
from .layers import *  # noqa: F401,F403
