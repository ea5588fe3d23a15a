from .inference import (build_inferencer, class_names, list_images,
                        load_config, task_of, visualize)

__all__ = [
    'build_inferencer', 'class_names', 'list_images', 'load_config', 'task_of',
    'visualize'
]
