"""mmboat's operations, apart from the modules that use them.

- :mod:`.cluster_layout`: the cluster layout rule for any number of tokens
  (levels, padding slots, the overlap cap), cached per ``N``;
- :mod:`.cluster_order`: the ``mmboat::cluster_order`` custom op (its one
  registration: torch kernel, compiled CPU kernel, fake implementation),
  its export decomposition; :func:`cluster_order_impl` says which CPU
  kernel runs (the C++ sources are in ``csrc/``, built as ``mmboat._ext``);
- :mod:`.cluster_gather`: the gathers between token and cluster order, as
  autograd Functions.

:class:`~mmboat.models.layers.FeatureSpaceLocalAttention` consumes them.
"""
from .cluster_gather import (SlotMaps, gather_cluster_qkv, key_windows,
                             slot_maps, to_token_order)
from .cluster_layout import (ClusterLayout, cluster_layout, key_overlap,
                             num_cluster_levels)
from .cluster_order import (EXPORT_DECOMPOSITIONS,
                            balanced_hierarchical_clustering, cluster_order,
                            cluster_order_decomposition, cluster_order_impl)

__all__ = [
    'EXPORT_DECOMPOSITIONS', 'ClusterLayout', 'SlotMaps',
    'balanced_hierarchical_clustering', 'cluster_layout', 'cluster_order',
    'cluster_order_decomposition', 'cluster_order_impl', 'gather_cluster_qkv',
    'key_overlap', 'key_windows', 'num_cluster_levels', 'slot_maps',
    'to_token_order'
]
