from .inference import (build_inferencer, class_names, list_images,
                        load_config, task_of, visualize)
from .weights import load_model_weights

__all__ = [
    'build_inferencer', 'class_names', 'list_images', 'load_config',
    'load_model_weights', 'task_of', 'visualize'
]
