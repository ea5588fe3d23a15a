from . import backbones  # noqa: F401  (registers the backbones)
from .layers import *  # noqa: F401,F403
