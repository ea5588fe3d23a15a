"""CPU distributed helpers: what they change in a config."""
from mmengine.config import Config

from mmboat.utils.dist import sync_bn_to_bn, use_cpu_distributed


def test_sync_bn_to_bn_counts_and_replaces_nested_configs():
    model = dict(
        backbone=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)),
        heads=[
            dict(norm_cfg=dict(type='MMSyncBN')),
            dict(norm_cfg=dict(type='LN'))
        ])
    assert sync_bn_to_bn(model) == 2
    assert model['backbone']['norm_cfg'] == dict(type='BN', requires_grad=True)
    assert [h['norm_cfg']['type'] for h in model['heads']] == ['BN', 'LN']
    assert sync_bn_to_bn(model) == 0


def test_single_process_config_is_left_alone():
    cfg = Config(
        dict(launcher='none', model=dict(norm_cfg=dict(type='SyncBN'))))
    use_cpu_distributed(cfg, training=True)
    assert cfg.model.norm_cfg.type == 'SyncBN'
    assert 'model_wrapper_cfg' not in cfg
