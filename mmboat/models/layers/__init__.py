from mmboat.ops import (ClusterLayout, balanced_hierarchical_clustering,
                        cluster_layout, num_cluster_levels)
from .embedding import ConvMerging, ConvStem, PatchStem, UnfoldMerging
from .feature_space_attention import FeatureSpaceLocalAttention
from .lepe import LePE
from .stripe_attention import CrossShapedWindowAttention
from .window_attention import PaddedShiftWindowMSA

__all__ = [
    'ClusterLayout', 'ConvMerging', 'ConvStem', 'CrossShapedWindowAttention',
    'FeatureSpaceLocalAttention', 'LePE', 'PaddedShiftWindowMSA', 'PatchStem',
    'UnfoldMerging', 'balanced_hierarchical_clustering', 'cluster_layout',
    'num_cluster_levels'
]
