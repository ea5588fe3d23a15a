from .complexity import (load_task_config, model_complexity, standard_forward,
                         standard_inputs)
from .flops import cluster_order_macs, register_flop_counting, sdpa_macs
from .tasks import TASKS, Task

__all__ = [
    'TASKS', 'Task', 'cluster_order_macs', 'load_task_config',
    'model_complexity', 'register_flop_counting', 'sdpa_macs',
    'standard_forward', 'standard_inputs'
]
