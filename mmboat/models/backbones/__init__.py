from .boat_cswin import BOATCSWinTransformer
from .boat_swin import BOATSwinTransformer

__all__ = ['BOATCSWinTransformer', 'BOATSwinTransformer']
