"""BOAT-Swin and BOAT-CSWin through timm: registration, presets, the timm
model interface, ``features_only``, and the converted reference checkpoints
loaded with ``pretrained_cfg_overlay=dict(file=...)`` (float64 parity).
That ``import mmboat`` alone registers them is in tests/env/test_registry.py.
"""
from types import SimpleNamespace

import pytest
import timm
import torch

from mmboat.converters import (convert_boat_cswin_checkpoint,
                               convert_boat_swin_checkpoint)
from mmboat.models.backbones import BOATCSWinTransformer, BOATSwinTransformer
from mmboat.timm import BOATClassifier
from mmboat.utils import CheckpointError, load_checkpoint_file
from tests.helpers import (build_classifier, count_params, reference_arch,
                           reference_fixture, rel_err)

SWIN = SimpleNamespace(
    name='boat_swin_tiny',
    backbone=BOATSwinTransformer,
    convert=convert_boat_swin_checkpoint,
    converter='boat_swin_to_mmboat.py',
    official='boat_swin_mini_official.pth',
    io='boat_swin_mini_io.pth',
    weights='model',  # where the official files keep their weights
    small=dict(embed_dims=16, depths=(1, 2, 1, 1), num_heads=(1, 2, 2, 4)))
CSWIN = SimpleNamespace(
    name='boat_cswin_tiny',
    backbone=BOATCSWinTransformer,
    convert=convert_boat_cswin_checkpoint,
    converter='boat_cswin_to_mmboat.py',
    official='boat_cswin_mini_official.pth',
    io='boat_cswin_mini_io.pth',
    weights='state_dict',
    small=dict(
        embed_dims=16,
        depths=(1, 1, 2, 1),
        num_heads=(2, 2, 2, 4),
        split_sizes=(1, 2, 7, 7)))
OTHER = {SWIN.name: CSWIN, CSWIN.name: SWIN}

PRESETS = [
    f'boat_{family}_{size}' for family in ('cswin', 'swin')
    for size in ('base', 'small', 'tiny')
]


@pytest.fixture(scope='module', params=[SWIN, CSWIN], ids=lambda f: f.name)
def family(request):
    return request.param


@pytest.fixture(scope='module')
def io(family):
    return load_checkpoint_file(str(reference_fixture(family.io)))


@pytest.fixture(scope='module')
def converted(family, tmp_path_factory):
    """The official mini file converted by the library converter."""
    official = reference_fixture(family.official)
    dst = tmp_path_factory.mktemp('converted') / f'{family.name}_mini.pth'
    torch.save(family.convert(official), dst)
    return dst


def create_small(family, **kwargs) -> BOATClassifier:
    torch.manual_seed(0)
    return timm.create_model(family.name, arch=family.small, **kwargs)


def test_registered():
    assert timm.list_models('boat_*') == sorted(PRESETS)
    # no download: the published files are converted locally
    assert timm.list_models('boat_*', pretrained=True) == []
    for name in PRESETS:
        cfg = timm.get_pretrained_cfg(name)
        assert cfg.tag == 'in1k' and cfg.num_classes == 1000
        assert cfg.input_size == (3, 224, 224) and not cfg.fixed_input_size
        assert cfg.mean == timm.data.IMAGENET_DEFAULT_MEAN
        assert cfg.std == timm.data.IMAGENET_DEFAULT_STD
        assert cfg.classifier == 'head.fc'
        assert cfg.crop_pct == (0.9 if 'cswin' in name else 0.875)
        assert not (cfg.url or cfg.hf_hub_id or cfg.file)
    with pytest.raises(RuntimeError, match='No pretrained weights exist'):
        timm.create_model(SWIN.name, arch=SWIN.small, pretrained=True)
    with pytest.raises(TypeError, match='pretrained_cfg_overlay'):
        timm.create_model(
            SWIN.name, arch=SWIN.small, init_cfg=dict(type='Pretrained'))


def test_models_read_the_family_descriptions():
    """The timm models of a family are its presets, built with its
    backbone (mmboat.families)."""
    from mmboat.families import FAMILIES
    from mmboat.timm.boat import TIMM_FAMILIES
    assert list(TIMM_FAMILIES.values()) == list(FAMILIES.values())
    assert sorted(f'{prefix}_{preset}'
                  for prefix, family in TIMM_FAMILIES.items()
                  for preset in family.arch_zoo) == sorted(PRESETS)
    with torch.device('meta'):
        model = timm.create_model('boat_cswin_small', num_classes=0)
    assert type(model.backbone) is FAMILIES['boat-cswin'].backbone
    assert model.backbone.arch == FAMILIES['boat-cswin'].arch_zoo['small']


@pytest.mark.parametrize(
    'name,count',
    [
        # the README's parameter table (ImageNet classifiers)
        ('boat_swin_tiny', 30_265_186),
        ('boat_swin_small', 55_158_898),
        ('boat_swin_base', 97_612_960),
        ('boat_cswin_tiny', 26_390_952),
        ('boat_cswin_small', 40_112_488),
        ('boat_cswin_base', 89_628_712),
    ])
def test_preset_parameter_counts(name, count):
    with torch.device('meta'):
        model = timm.create_model(name)
    assert count_params(model) == count
    cfg = model.pretrained_cfg
    assert isinstance(model.get_submodule(cfg['first_conv']), torch.nn.Conv2d)
    classifier = model.get_submodule(cfg['classifier'])
    assert classifier is model.get_classifier()
    assert classifier.out_features == 1000
    assert classifier.in_features == model.num_features


def test_classifier_interface(family):
    model = create_small(
        family,
        num_classes=5,
        drop_rate=0.3,
        proj_drop_rate=0.1,
        dtype=torch.float64).eval()
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert model.head.drop.p == 0.3
    assert model.backbone.block_cfg['drop_rate'] == 0.1
    assert model.num_features == 16 * 8
    assert [(f['num_chs'], f['reduction'])
            for f in model.feature_info] == [(16, 4), (32, 8), (64, 16),
                                             (128, 32)]
    # no multiple of the windows or strides
    x = torch.randn(2, 3, 70, 50, dtype=torch.float64)
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model(x)
        pooled = model.forward_head(features, pre_logits=True)
        final, stages = model.forward_intermediates(x)
    assert features.shape[:2] == (2, 128)
    torch.testing.assert_close(final, features, rtol=0, atol=0)
    assert [s.shape[1] for s in stages] == [16, 32, 64, 128]
    assert logits.shape == (2, 5) and pooled.shape == (2, 128)
    torch.testing.assert_close(logits, model.forward_head(features))

    model.reset_classifier(0)
    with torch.no_grad():
        torch.testing.assert_close(model(x), pooled)
    model.reset_classifier(7, global_pool='avgmax')
    assert model.get_classifier().out_features == 7
    assert model.global_pool == 'avgmax' and model(x).shape == (2, 7)

    model.set_grad_checkpointing()
    assert all(b.with_cp for s in model.backbone.stages for b in s.blocks)


@pytest.mark.parametrize('size', [(64, 64), (70, 50), (5, 3)])
def test_features_only(family, size):
    model = create_small(family, features_only=True).eval()
    assert model.feature_info.reduction() == [4, 8, 16, 32]
    assert model.feature_info.channels() == [16, 32, 64, 128]
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        features = model(x)
    # the grids of the mmboat backbone (padded inside) for this input
    backbone = family.backbone(arch=family.small).eval()
    with torch.no_grad():
        grids = [m.shape[2:] for m in backbone(x)]
    assert [f.shape[:2] for f in features] == [(2, c)
                                               for c in (16, 32, 64, 128)]
    assert [f.shape[2:] for f in features] == grids
    if size == (64, 64):
        assert [f.shape[-1] for f in features] == [16, 8, 4, 2]


def test_features_only_out_indices(family):
    model = create_small(family, features_only=True, out_indices=(1, 2))
    assert model.feature_info.channels() == [32, 64]
    assert model.feature_info.reduction() == [8, 16]
    # stage 4, the final norm and the classifier are pruned
    assert len(model.model.backbone.stages) == 3
    assert model.model.backbone.stages[-1].downsample is None
    assert count_params(model.model.head) == 0
    with torch.no_grad():
        features = model(torch.randn(1, 3, 64, 64))
    assert [f.shape[1:] for f in features] == [(32, 8, 8), (64, 4, 4)]


def test_converted_checkpoint_float64_parity(family, io, converted,
                                             one_thread):
    """The converted reference file loaded through timm gives the
    reference logits and stage outputs, and the mmpretrain classifier's
    logits."""
    arch = reference_arch(io['arch'])
    overlay = dict(file=str(converted), num_classes=io['arch']['num_classes'])
    model = timm.create_model(
        family.name,
        arch=arch,
        pretrained=True,
        pretrained_cfg_overlay=overlay).double().eval()
    x = io['input']
    with torch.no_grad():
        final, stages = model.forward_intermediates(x)
        logits = model.forward_head(final)
    errors = {'logits': rel_err(logits, io['logits'])}
    for i, (out, ref) in enumerate(zip(stages, io['stage_outputs'])):
        errors[f'stage{i + 1}'] = rel_err(out.flatten(2).transpose(1, 2), ref)

    classifier = build_classifier(family.backbone.__name__, arch,
                                  io['arch']['num_classes'])
    classifier.load_state_dict(
        load_checkpoint_file(str(converted))['state_dict'])
    with torch.no_grad():
        mmpretrain_logits = classifier.double().eval()(x)
    max_abs = (logits - mmpretrain_logits).abs().max().item()
    print(f'relative errors: {errors}; max |timm - mmpretrain| {max_abs:.1e}')
    assert all(e <= 1e-6 for e in errors.values()), errors
    assert max_abs <= 1e-12

    # features_only loads the same backbone weights (without the head)
    features = timm.create_model(
        family.name,
        arch=arch,
        pretrained=True,
        features_only=True,
        pretrained_cfg_overlay=overlay).double().eval()
    with torch.no_grad():
        for out, ref in zip(features(x), stages):
            torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_unconverted_file_is_refused(family, tmp_path):
    weights = load_checkpoint_file(str(reference_fixture(
        family.official)))[family.weights]
    path = tmp_path / 'official.pth'
    torch.save({family.weights: weights}, path)
    with pytest.raises(CheckpointError, match=family.converter):
        timm.create_model(
            family.name,
            arch=family.small,
            pretrained=True,
            pretrained_cfg_overlay=dict(file=str(path)))


def test_other_family_is_refused(family, io, converted):
    other = OTHER[family.name]
    with pytest.raises(CheckpointError, match=other.converter):
        timm.create_model(
            other.name,
            arch=other.small,
            pretrained=True,
            pretrained_cfg_overlay=dict(file=str(converted), num_classes=10))
