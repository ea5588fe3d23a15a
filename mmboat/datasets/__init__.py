from .tiny_shapes import (CLASSES, METAINFO, draw_scene, draw_single_shape,
                          is_complete, make_tiny_datasets)
from .tiny_shapes_stream import EpochStreamSampler, TinyShapesStream

__all__ = [
    'CLASSES', 'METAINFO', 'draw_scene', 'draw_single_shape', 'is_complete',
    'make_tiny_datasets', 'EpochStreamSampler', 'TinyShapesStream'
]
