from .tiny_shapes import CLASSES, METAINFO, draw_scene, make_tiny_datasets

__all__ = ['CLASSES', 'METAINFO', 'draw_scene', 'make_tiny_datasets']
