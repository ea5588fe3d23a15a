from .feature_space_attention import (ClusterLayout, FeatureSpaceLocalAttention,
                                      balanced_hierarchical_clustering,
                                      cluster_layout, num_cluster_levels)

__all__ = [
    'ClusterLayout', 'FeatureSpaceLocalAttention',
    'balanced_hierarchical_clustering', 'cluster_layout', 'num_cluster_levels'
]
