from .boat_cswin import BOATCSWinTransformer, convert_boat_cswin_checkpoint
from .boat_swin import BOATSwinTransformer, convert_boat_swin_checkpoint

__all__ = [
    'BOATCSWinTransformer', 'convert_boat_cswin_checkpoint',
    'BOATSwinTransformer', 'convert_boat_swin_checkpoint'
]
