"""Every config under configs/ (at any depth) loads with its mmdet / mmseg /
mmpretrain base, builds its model through the registry of its
``default_scope`` and runs a forward pass on a small input, with output
shapes read from the config; its optimiser exempts exactly the norms and
position tables (plus biases in the ImageNet recipe) from weight decay. The
zoo of BOAT-Swin / BOAT-CSWin T/S/B configs is complete and follows the
published recipes."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from mmboat.models.layers import FeatureSpaceLocalAttention

CONFIG_ROOT = Path(__file__).resolve().parents[1] / 'configs'
CONFIGS = sorted(CONFIG_ROOT.rglob('*.py'))
TASKS = {
    'mmdet': 'detection',
    'mmseg': 'segmentation',
    'mmpretrain': 'classification'
}
FAMILIES = {'swin': 'BOATSwinTransformer', 'cswin': 'BOATCSWinTransformer'}
SIZES = {'t': 'tiny', 's': 'small', 'b': 'base'}


def zoo_name(task, family, size):
    name = f'boat-{family}-{size}'
    return {
        '1x': f'mask-rcnn_{name}_fpn_1x_coco.py',
        '3x': f'mask-rcnn_{name}_fpn_ms-crop-3x_coco.py',
        'seg': f'upernet_{name}_8xb2-160k_ade20k-512x512.py',
        'cls': f'{name}_16xb64_in1k.py',
    }[task]


def load(path):
    cfg = Config.fromfile(str(path))
    # mmboat; the stream pretraining configs also import the module of
    # the classifier with training-only losses (`import mmboat` does not
    # register it), which the configs that use it must do
    imports = cfg.custom_imports['imports']
    assert imports in (['mmboat'], ['mmboat', 'mmboat.models.classifiers'])
    if cfg.model.type == 'AuxLossImageClassifier':
        assert 'mmboat.models.classifiers' in imports, path
    assert cfg.default_scope in TASKS, (
        f'{path}: default_scope {cfg.default_scope!r} is none of {TASKS}')
    return cfg


@pytest.fixture(
    scope='module',
    params=CONFIGS,
    ids=lambda p: str(p.relative_to(CONFIG_ROOT)))
def built(request):
    """(config, model in eval mode) of one config; pytest runs every test of
    one config before building the next, so one model is alive at a time."""
    cfg = load(request.param)
    __import__('mmboat')
    init_default_scope(cfg.default_scope)
    return cfg, MODELS.build(cfg.model).eval()


def test_configs_are_found():
    assert len(CONFIGS) >= 24
    names = {p.name for p in CONFIGS}
    missing = [
        f'boat_{fam}/{zoo_name(task, fam, size)}' for fam in FAMILIES
        for size in SIZES for task in ('1x', '3x', 'seg', 'cls')
        if zoo_name(task, fam, size) not in names
    ]
    assert not missing


def test_config_runs(built):
    cfg, model = built
    task = TASKS[cfg.default_scope]
    if task == 'detection':
        from mmdet.models.detectors import BaseDetector
        from mmdet.structures import DetDataSample
        assert isinstance(model, BaseDetector)
        h, w = 96, 160
        sample = DetDataSample(
            metainfo=dict(
                img_shape=(h, w),
                ori_shape=(h, w),
                scale_factor=(1., 1.),
                pad_shape=(h, w),
                batch_input_shape=(h, w)))
        data = dict(
            inputs=[torch.randint(0, 255, (3, h, w), dtype=torch.uint8)],
            data_samples=[sample])
        with torch.no_grad():
            pred = model.test_step(data)[0].pred_instances
        num_classes = cfg.model.roi_head.bbox_head.num_classes
        assert pred.masks.shape[1:] == (h, w)
        assert pred.bboxes.shape == (len(pred), 4)
        assert ((pred.labels >= 0) & (pred.labels < num_classes)).all()
    elif task == 'segmentation':
        from mmseg.models.segmentors import BaseSegmentor
        assert isinstance(model, BaseSegmentor)
        with torch.no_grad():
            out = model(torch.randn(1, 3, 64, 96), mode='tensor')
        assert out.shape == (1, cfg.model.decode_head.num_classes, 16, 24)
    else:
        from mmpretrain.models import ImageClassifier
        assert isinstance(model, ImageClassifier)
        with torch.no_grad():
            out = model(torch.randn(1, 3, 64, 64), mode='tensor')
        assert out.shape == (1, cfg.model.head.num_classes)


def test_weight_decay_exemptions(built):
    """Recipes of Swin: no decay on the LayerNorms (BOAT's ``norm_fsla``
    included) and the relative position tables; the ImageNet recipe also
    exempts every bias and norm of the model. Everything else decays."""
    from mmengine.optim import build_optim_wrapper
    cfg, model = built
    optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    decay = cfg.optim_wrapper.optimizer.weight_decay
    assert decay > 0
    # trained parameters only (a frozen distillation teacher's get no
    # update, decayed or not)
    names = {id(p): n for n, p in model.named_parameters() if p.requires_grad}
    no_decay = {
        names[id(p)]
        for group in optimizer.param_groups
        for p in group['params']
        if group['weight_decay'] == 0 and id(p) in names
    }
    assert all(g['weight_decay'] in (0, decay) for g in optimizer.param_groups)

    norms = {
        f'{m_name}.{p_name}'
        for m_name, m in model.named_modules()
        if isinstance(m, (torch.nn.LayerNorm, torch.nn.GroupNorm,
                          torch.nn.modules.batchnorm._BatchNorm))
        for p_name, p in m.named_parameters(recurse=False) if p.requires_grad
    }
    tables = {n for n in names.values() if 'relative_position_bias' in n}
    if TASKS[cfg.default_scope] == 'classification':
        biases = {n for n in names.values() if n.endswith('.bias')}
        expected = norms | tables | biases
    else:  # the mmdet / mmseg key 'norm': LayerNorms, not the heads' `bn`s
        expected = {n for n in norms | tables if n.startswith('backbone.')}
    assert sorted(no_decay - expected) == []
    assert sorted(expected - no_decay) == []
    if any(isinstance(m, FeatureSpaceLocalAttention) for m in model.modules()):
        assert any('.norm_fsla.' in n for n in no_decay)
        assert any('.fsla.qkv.weight' in n
                   for n in set(names.values()) - no_decay)
    if cfg.model.backbone.type == 'BOATSwinTransformer':
        assert any(
            n.endswith('relative_position_bias_table') for n in no_decay)


NO_DECAY = {  # parameter names, block and stage numbers as *
    'boat_swin/mask-rcnn_boat-swin-t_fpn_1x_coco.py': [
        'norm*.bias', 'norm*.weight', 'patch_embed.norm.bias',
        'patch_embed.norm.weight',
        'stages.*.blocks.*.attn.w_msa.relative_position_bias_table',
        'stages.*.blocks.*.norm1.bias', 'stages.*.blocks.*.norm1.weight',
        'stages.*.blocks.*.norm2.bias', 'stages.*.blocks.*.norm2.weight',
        'stages.*.blocks.*.norm_fsla.bias',
        'stages.*.blocks.*.norm_fsla.weight', 'stages.*.downsample.norm.bias',
        'stages.*.downsample.norm.weight'
    ],
    'boat_cswin/upernet_boat-cswin-t_8xb2-160k_ade20k-512x512.py': [
        'norm*.bias', 'norm*.weight', 'patch_embed.norm.bias',
        'patch_embed.norm.weight', 'stages.*.blocks.*.norm1.bias',
        'stages.*.blocks.*.norm1.weight', 'stages.*.blocks.*.norm2.bias',
        'stages.*.blocks.*.norm2.weight', 'stages.*.blocks.*.norm_fsla.bias',
        'stages.*.blocks.*.norm_fsla.weight', 'stages.*.downsample.norm.bias',
        'stages.*.downsample.norm.weight'
    ],
}


@pytest.mark.parametrize('config', NO_DECAY)
def test_no_decay_parameters_listed(config):
    """What the det / seg recipes exempt from weight decay, in BOAT's names:
    only backbone LayerNorms (``norm_fsla`` too) and Swin's relative
    position tables; FSLA / attention / MLP weights and biases decay."""
    import re

    from mmengine.optim import build_optim_wrapper
    cfg = load(CONFIG_ROOT / config)
    __import__('mmboat')
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    names = {id(p): n for n, p in model.named_parameters()}

    def pattern(match):
        return 'norm*.' if match[0].startswith('norm') else '*'

    no_decay = {
        re.sub(r'^norm\d+\.|(?<=\.)\d+(?=\.)', pattern,
               names[id(p)].removeprefix('backbone.'))
        for group in optimizer.param_groups
        for p in group['params'] if group['weight_decay'] == 0
    }
    assert sorted(no_decay) == NO_DECAY[config]


ZOO = [(fam, size, task) for fam in FAMILIES for size in SIZES
       for task in ('1x', '3x', 'seg', 'cls')]


@pytest.mark.parametrize('fam,size,task', ZOO, ids=['/'.join(z) for z in ZOO])
def test_zoo_recipe(fam, size, task):
    """Backbone size, drop path, schedule, init checkpoint and optimiser of
    each zoo config."""
    cfg = load(CONFIG_ROOT / f'boat_{fam}' / zoo_name(task, fam, size))
    backbone = cfg.model.backbone
    assert backbone.type == FAMILIES[fam] and backbone.arch == SIZES[size]
    drop_path = {
        ('swin', '1x'): 'tsb 0.2 0.3 0.3',
        ('swin', 'seg'): 'tsb 0.3 0.3 0.3',
        ('swin', 'cls'): 'tsb 0.2 0.3 0.5',
        ('cswin', '1x'): 'tsb 0.2 0.4 0.5',
        ('cswin', 'seg'): 'tsb 0.3 0.4 0.6',
        ('cswin', 'cls'): 'tsb 0.2 0.4 0.5',
    }[fam, '1x' if task == '3x' else task].split()
    assert backbone.drop_path_rate == float(drop_path[1 + 'tsb'.index(size)])
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'AdamW'
    if task == 'cls':
        assert cfg.train_cfg.max_epochs == 300
        assert 'init_cfg' not in backbone
        assert [h.type for h in cfg.custom_hooks] == ['EMAHook']
        assert optimizer.weight_decay == 0.05
        schedulers = [s.type for s in cfg.param_scheduler]
        assert schedulers == ['LinearLR', 'CosineAnnealingLR']
        augments = [a.type for a in cfg.model.train_cfg.augments]
        assert augments == ['Mixup', 'CutMix']
        assert cfg.model.head.loss.type == 'LabelSmoothLoss'
        assert 'RandAugment' in [
            t.type for t in cfg.train_dataloader.dataset.pipeline
        ]
        return
    assert backbone.init_cfg == dict(
        type='Pretrained',
        checkpoint=f'checkpoints/boat-{fam}-{size}_in1k_mmboat.pth')
    custom_keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
    assert {'norm', 'relative_position_bias_table'} <= set(custom_keys)
    if task == 'seg':
        assert cfg.train_cfg.max_iters == 160000
        assert (optimizer.lr, optimizer.weight_decay) == (6e-5, 0.01)
        assert cfg.crop_size == (512, 512)
    else:
        assert cfg.train_cfg.max_epochs == {'1x': 12, '3x': 36}[task]
        assert (optimizer.lr, optimizer.weight_decay) == (1e-4, 0.05)
        pipeline = [t.type for t in cfg.train_dataloader.dataset.pipeline]
        assert ('RandomChoice' in pipeline) == (task == '3x')


@pytest.mark.parametrize('backbone', ['swin', 'cswin'])
@pytest.mark.parametrize('variant', ['', '-nofsla'])
def test_stream_pretraining_backbone_is_the_tiny_dense_backbone(
        backbone, variant):
    """The backbone a stream pretraining config trains is the one of the
    tiny Mask R-CNN and UperNet configs of the same family and variant:
    the same weights, name for name and shape for shape, and the same
    forward (outputs of every stage)."""
    tiny = CONFIG_ROOT / 'tiny'
    name = f'boat-{backbone}-nano{variant}'
    pretrain = load(tiny / f'{name}_stream-pretrain_tiny-shapes.py')
    dense = [
        load(tiny / f'mask-rcnn_{name}_fpn_tiny-shapes.py'),
        load(tiny / f'upernet_{name}_tiny-shapes.py')
    ]
    __import__('mmboat')
    torch.manual_seed(0)
    source = MODELS.build(pretrain.model.backbone).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected = source(x)
    for cfg in dense:
        target = MODELS.build(dict(cfg.model.backbone, init_cfg=None)).eval()
        own = {k: v.shape for k, v in target.state_dict().items()}
        assert own == {k: v.shape for k, v in source.state_dict().items()}
        target.load_state_dict(source.state_dict())
        with torch.no_grad():
            out = target(x)
        assert len(out) == len(expected) == 4
        assert all(torch.equal(a, b) for a, b in zip(out, expected))
