from .clusters import (ClusterPicture, FSLAClusters, check_heads,
                       cluster_fsla_input, draw_clusters, find_fsla_blocks,
                       fsla_clusters, leaf_palette, select_fsla_blocks)

__all__ = [
    'ClusterPicture', 'FSLAClusters', 'check_heads', 'cluster_fsla_input',
    'draw_clusters', 'find_fsla_blocks', 'fsla_clusters', 'leaf_palette',
    'select_fsla_blocks'
]
