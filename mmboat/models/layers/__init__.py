from .clustering import (ClusterLayout, balanced_hierarchical_clustering,
                         cluster_layout, num_cluster_levels)
from .feature_space_attention import FeatureSpaceLocalAttention

__all__ = [
    'ClusterLayout', 'FeatureSpaceLocalAttention',
    'balanced_hierarchical_clustering', 'cluster_layout', 'num_cluster_levels'
]
