"""What mmboat refuses, and why: one table of bad inputs.

Every row is ``(id, action, error type, message fragment)``: ``action`` is a
function of pytest's ``tmp_path`` that does what a user might do with a bad
input; the test asserts that it raises ``error type`` with a message that
contains ``message fragment`` (case-insensitive). For command-line tools the
action raises ``ToolFailed`` (the tool's exit code and output) when the tool
exits non-zero, so the same table holds them. The section "What mmboat
refuses, and why" of docs/checkpoints.md points here: this list is the
documentation.
"""
import re
from pathlib import Path

import pytest


class ToolFailed(Exception):
    """A tool of ``tools/`` exited non-zero; the message is its output."""


# ------------------------------------------------------------- models
# backbone arguments, tensors into backbones and FSLA. Arguments are
# checked when a backbone or FSLA is built, in one place for both
# families, mmboat/models/validate.py; a forward pass only checks the
# shape of its input (one condition that compile and export trace), and
# PyTorch's own layers refuse another dtype or device than the weights'
# with their own messages (FSLA called directly checks its tokens' dtype
# itself, from metadata only). Legitimate inputs are not refused
# and have behaviour tests instead: an empty batch (0, 3, H, W) gives
# empty outputs (tests/models/backbones/test_backbone_contract.py, and
# (0, N, C) in tests/models/layers/test_feature_space_attention.py), and
# both families run on images of any H, W >= 1, e.g. 1 x 500 or 1 x 1
# (test_backbone_contract.py); only H or W = 0 is refused.


def _model_backbone(family, arch=None, **kwargs):
    """A small backbone of ``family`` ('swin' or 'cswin'), with entries of
    its arch dict replaced by ``arch``."""
    from mmboat.models.backbones import (BOATCSWinTransformer,
                                         BOATSwinTransformer)
    if family == 'swin':
        cls = BOATSwinTransformer
        small = dict(
            embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))
    else:
        cls = BOATCSWinTransformer
        small = dict(
            embed_dims=16,
            depths=(1, 2, 2, 1),
            num_heads=(2, 2, 4, 8),
            split_sizes=(1, 2, 7, 7))
    return cls(arch=dict(small, **(arch or {})), **kwargs)


def _model_run(family,
               shape=(1, 3, 64, 64),
               dtype='float32',
               autocast=False,
               numpy=False):
    """A small eval backbone of ``family`` on zeros of ``shape`` and
    ``dtype`` (as a numpy array if ``numpy``), under CPU autocast if
    ``autocast``."""
    import torch
    model = _model_backbone(family).eval()
    x = torch.zeros(shape, dtype=getattr(torch, dtype))
    with torch.no_grad(), torch.autocast('cpu', enabled=autocast):
        model(x.numpy() if numpy else x)


def _model_meta_weights(family):
    """Weights on the meta device, the input on the CPU."""
    import torch
    with torch.device('meta'):
        model = _model_backbone(family)
    model(torch.randn(1, 3, 32, 32))


def _model_fsla(make_input=None, embed_dims=32, num_heads=2, **kwargs):
    """FSLA (32 channels, 2 heads, ``kwargs``) on ``make_input(torch)`` of
    a 10 x 10 grid."""
    import torch

    from mmboat.models.layers import FeatureSpaceLocalAttention
    fsla = FeatureSpaceLocalAttention(embed_dims, num_heads, **kwargs)
    if make_input is not None:
        fsla(make_input(torch), (10, 10))


def _model_layer(name, *args, **kwargs):
    """The layer ``name`` of mmboat.models.layers, built directly."""
    from mmboat.models import layers
    getattr(layers, name)(*args, **kwargs)


# (id, action(family), error, fragment), for both families
_MODEL_BOTH_FAMILIES = [
    # finding 3: bad backbone arguments; the same rules for both families
    ('depths-0', lambda f: _model_backbone(f, dict(depths=(2, 0, 2, 1))),
     ValueError, 'depths[1]=0 is not allowed: it must be an int >= 1'),
    ('depths-negative',
     lambda f: _model_backbone(f, dict(depths=(2, -3, 2, 2))), ValueError,
     'depths[1]=-3 is not allowed: it must be an int >= 1'),
    ('depths-fraction',
     lambda f: _model_backbone(f, dict(depths=(2, 2.5, 2, 2))), TypeError,
     'depths[1]=2.5 is not allowed: it must be an int'),
    ('depths-string', lambda f: _model_backbone(f, dict(depths='2222')),
     TypeError, "depths='2222' is not allowed: it must be a sequence"),
    ('embed-dims-0', lambda f: _model_backbone(f, dict(embed_dims=0)),
     ValueError, 'embed_dims=0 is not allowed: it must be an int >= 1'),
    ('num-heads-0', lambda f: _model_backbone(f, dict(num_heads=(0, 2, 4, 8))),
     ValueError, 'num_heads[0]=0 is not allowed: it must be an int >= 1'),
    ('num-heads-not-dividing',
     lambda f: _model_backbone(f, dict(num_heads=(2, 3, 4, 8))), ValueError,
     'num_heads[1]=3 is not allowed: stage 1 has'),
    ('drop-path-rate-negative',
     lambda f: _model_backbone(f, drop_path_rate=-1), ValueError,
     'drop_path_rate=-1 is not allowed: it must be a number in [0, 1)'),
    ('drop-path-rate-2', lambda f: _model_backbone(f, drop_path_rate=2),
     ValueError,
     'drop_path_rate=2 is not allowed: it must be a number in [0, 1)'),
    ('drop-path-rate-1', lambda f: _model_backbone(f, drop_path_rate=1.),
     ValueError, 'drop_path_rate=1.0 is not allowed'),
    ('drop-path-rate-nan',
     lambda f: _model_backbone(f, drop_path_rate=float('nan')), ValueError,
     'drop_path_rate=nan is not allowed'),
    ('drop-rate-1.5', lambda f: _model_backbone(f, drop_rate=1.5), ValueError,
     'drop_rate=1.5 is not allowed: it must be a number in [0'),
    ('attn-drop-rate-negative',
     lambda f: _model_backbone(f, attn_drop_rate=-0.1), ValueError,
     'attn_drop_rate=-0.1 is not allowed'),
    ('mlp-ratio-0', lambda f: _model_backbone(f, mlp_ratio=0), ValueError,
     'mlp_ratio=0 is not allowed: it must be a number > 0'),
    ('mlp-ratio-negative', lambda f: _model_backbone(f, mlp_ratio=-1),
     ValueError, 'mlp_ratio=-1 is not allowed'),
    ('mlp-ratio-no-hidden-channel',
     lambda f: _model_backbone(f, mlp_ratio=0.01), ValueError,
     'mlp_ratio=0.01 is not allowed'),
    ('in-channels-0', lambda f: _model_backbone(f, in_channels=0), ValueError,
     'in_channels=0 is not allowed: it must be an int >= 1'),
    ('out-indices-out-of-range',
     lambda f: _model_backbone(f, out_indices=(4, )), ValueError,
     'out_indices=(4,) is not allowed'),
    ('frozen-stages-5', lambda f: _model_backbone(f, frozen_stages=5),
     ValueError,
     'frozen_stages=5 is not allowed: it must be an int in [-1, 4]'),
    ('fsla-blocks-flat', lambda f: _model_backbone(f, fsla_blocks=[1, 3]),
     TypeError, 'fsla_blocks=[1, 3] is not allowed: it must hold one '
     'sequence of block indices per stage'),
    ('fsla-blocks-flat-one-per-stage',
     lambda f: _model_backbone(f, fsla_blocks=[1, 1, 1, 1]), TypeError,
     'fsla_blocks=[1, 1, 1, 1] is not allowed'),
    ('fsla-blocks-negative',
     lambda f: _model_backbone(f, fsla_blocks=[[-1], [], [], []]), ValueError,
     'fsla_blocks[0]=-1 is not allowed'),
    ('fsla-cfg-overlap-too-large',
     lambda f: _model_backbone(f, fsla_cfg=dict(overlap=60)), ValueError,
     'fsla_cfg.overlap=60 is not allowed: it must be in [0, cluster_size'),
    ('fsla-cfg-temperature-0',
     lambda f: _model_backbone(f, fsla_cfg=dict(temperature=0)), ValueError,
     'fsla_cfg.temperature=0 is not allowed'),
    ('fsla-cfg-qk-scale-negative',
     lambda f: _model_backbone(f, fsla_cfg=dict(qk_scale=-1)), ValueError,
     'fsla_cfg.qk_scale=-1 is not allowed'),
    # finding 4: an image needs H, W >= 1 (every such size runs)
    ('image-height-0', lambda f: _model_run(f, (1, 3, 0, 64)), ValueError,
     'H and W must be >= 1'),
    # finding 6: tensors the backbone cannot take: a bad shape refused
    # before the stem, with the fix; dtype, device and type by PyTorch
    ('input-4-channels', lambda f: _model_run(f, (1, 4, 64, 64)), ValueError,
     'the backbone takes 3 channels (in_channels=3), the input has 4'),
    ('input-1-channel', lambda f: _model_run(f, (2, 1, 64, 64)), ValueError,
     'the input has 1. Fix: give 3-channel images'),
    ('input-3d', lambda f: _model_run(f, (3, 64, 64)), ValueError,
     'it must be a 4-D batch (B, 3, H, W), got 3-D. Fix: add the batch '
     'axis'),
    ('input-uint8', lambda f: _model_run(f, dtype='uint8'), RuntimeError,
     'Input type (unsigned char) and bias type (float) should be the same'),
    ('input-int64', lambda f: _model_run(f, dtype='int64'), RuntimeError,
     'Input type (long int) and bias type (float)'),
    ('input-float16-into-float32', lambda f: _model_run(f, dtype='float16'),
     RuntimeError, 'Input type (c10::Half) and bias type (float)'),
    ('input-float64-into-float32', lambda f: _model_run(f, dtype='float64'),
     RuntimeError, 'Input type (double) and bias type (float)'),
    ('input-float64-under-autocast',
     lambda f: _model_run(f, dtype='float64', autocast=True), RuntimeError,
     'Input type (double) and bias type (c10::BFloat16)'),
    ('input-numpy', lambda f: _model_run(f, numpy=True), TypeError,
     'got (numpy.ndarray'),
    ('input-other-device', _model_meta_weights, RuntimeError,
     'Tensor on device meta is not on the expected device cpu'),
]

MODEL_CASES = [
    (f'{family}-{name}', lambda tmp_path, a=action, f=family: a(f), error,
     fragment) for family in ('swin', 'cswin')
    for name, action, error, fragment in _MODEL_BOTH_FAMILIES
] + [
    # finding 3, arguments of one family
    ('swin-window-size-0',
     lambda tmp_path: _model_backbone('swin', window_size=0), ValueError,
     'window_size=0 is not allowed: it must be an int >= 1'),
    ('swin-window-size-negative',
     lambda tmp_path: _model_backbone('swin', window_size=-1), ValueError,
     'window_size=-1 is not allowed'),
    ('swin-pretrain-img-size-0',
     lambda tmp_path: _model_backbone('swin', pretrain_img_size=0), ValueError,
     'pretrain_img_size=0 is not allowed'),
    ('cswin-split-sizes-0',
     lambda tmp_path: _model_backbone('cswin', dict(split_sizes=(0, 2, 7, 7))),
     ValueError, 'split_sizes[0]=0 is not allowed: it must be an int >= 1'),
    ('cswin-stripe-heads-odd',
     lambda tmp_path: _model_backbone('cswin', dict(num_heads=(1, 2, 4, 8))),
     ValueError, 'num_heads[0]=1 is not allowed: num_heads must be even'),
    # FSLA's own arguments and tokens
    ('fsla-cluster-size-1', lambda tmp_path: _model_fsla(cluster_size=1),
     ValueError, 'cluster_size=1 is not allowed: it must be an int >= 2'),
    ('fsla-overlap-too-large', lambda tmp_path: _model_fsla(overlap=49),
     ValueError, 'overlap=49 is not allowed: it must be in [0, '
     'cluster_size=49)'),
    ('fsla-temperature-0', lambda tmp_path: _model_fsla(temperature=0),
     ValueError, 'temperature=0 is not allowed: it must be a number > 0'),
    ('fsla-qk-scale-0', lambda tmp_path: _model_fsla(qk_scale=0), ValueError,
     'qk_scale=0 is not allowed'),
    ('fsla-2d-tokens',
     lambda tmp_path: _model_fsla(lambda torch: torch.randn(100, 32)),
     ValueError, 'FSLA takes 3-D tokens (B, N, C)'),
    ('fsla-wrong-channels',
     lambda tmp_path: _model_fsla(lambda torch: torch.randn(1, 100, 16)),
     ValueError, 'C = embed_dims = 32: got x of shape (1, 100, 16)'),
    ('fsla-wrong-grid',
     lambda tmp_path: _model_fsla(lambda torch: torch.randn(1, 99, 32)),
     ValueError, 'N = H * W and C = embed_dims = 32: got x of shape '
     '(1, 99, 32) and hw_shape=(10, 10)'),
    # issue 22: FSLA and the attention layers built directly name a size
    # of 0 or less (was a ZeroDivisionError) ...
    ('fsla-num-heads-0', lambda tmp_path: _model_fsla(num_heads=0), ValueError,
     'FeatureSpaceLocalAttention: num_heads=0 is not allowed: '
     'it must be an int >= 1'),
    ('fsla-num-heads-not-dividing', lambda tmp_path: _model_fsla(num_heads=3),
     ValueError, 'num_heads=3 is not allowed: it must divide embed_dims=32. '
     'Fix: use a divisor of 32, e.g. num_heads=2'),
    ('fsla-embed-dims-negative', lambda tmp_path: _model_fsla(embed_dims=-32),
     ValueError, 'embed_dims=-32 is not allowed: it must be an int >= 1'),
    ('window-attention-num-heads-0',
     lambda tmp_path: _model_layer('PaddedShiftWindowMSA', 32, 0, 7),
     ValueError, 'PaddedShiftWindowMSA: num_heads=0 is not allowed'),
    ('window-attention-shift-too-large', lambda tmp_path: _model_layer(
        'PaddedShiftWindowMSA', 32, 2, 7, shift_size=7), ValueError,
     'shift_size=7 is not allowed: it must be an int in [0, 6]'),
    ('stripe-attention-split-size-0',
     lambda tmp_path: _model_layer('CrossShapedWindowAttention', 32, 2, 0),
     ValueError, 'CrossShapedWindowAttention: split_size=0 is not allowed'),
    ('lepe-channels-0', lambda tmp_path: _model_layer('LePE', 0), ValueError,
     'LePE: channels=0 is not allowed'),
    # ... an overlap hint that is itself valid (was "e.g. 20" for any
    # cluster_size) ...
    ('fsla-overlap-hint-small-cluster',
     lambda tmp_path: _model_fsla(cluster_size=10, overlap=12), ValueError,
     'use an overlap below 10, e.g. overlap=4'),
    # ... and tokens of another type than the weights: mmboat's message
    # (a check of dtypes only, no host sync), not torch's
    ('fsla-int-tokens', lambda tmp_path: _model_fsla(lambda torch: torch.zeros(
        1, 100, 32, dtype=torch.long)), TypeError,
     "tokens dtype='int64' is not allowed: the weights are float32"),
    ('fsla-float64-tokens', lambda tmp_path: _model_fsla(
        lambda torch: torch.zeros(1, 100, 32, dtype=torch.float64)), TypeError,
     'Fix: convert the tokens, x.to(torch.float32), or the '
     'module, module.to(torch.float64)'),
]

# -------------------------------------------------------- checkpoints
# init_cfg, load_from, converters, tools/test.py. Checkpoints are read
# without running code from them (mmboat/utils/checkpoint.py); a model
# with an mmboat backbone loads only a checkpoint that fits it weight for
# weight (tools/test.py, load_from, resume, init_cfg), unless a partial
# load is asked for (--allow-partial, allow_partial_load=True); the
# converters only read their source and replace their destination by a
# complete file (mmboat/converters/cli.py).
from mmboat.utils.checkpoint import CheckpointError  # noqa: E402

_CKPT_ARCHS = dict(
    swin=dict(embed_dims=16, depths=(1, 1), num_heads=(1, 2)),
    cswin=dict(
        embed_dims=16, depths=(1, 1), num_heads=(2, 4), split_sizes=(1, 7)))
_CKPT_BACKBONES = dict(
    swin='BOATSwinTransformer', cswin='BOATCSWinTransformer')
_CKPT_OFFICIAL = dict(
    swin=('boat_swin_mini_official.pth', 'tiny.pth'),
    cswin=('boat_cswin_mini_official.pth', 'cswin_tiny.pth.tar'))
# an ImageClassifier with a small BOAT-Swin, on 2 classes of 1 image each
_CKPT_CONFIG = '''
_base_ = '{repo}/configs/boat_swin/boat-swin-t_16xb64_in1k.py'
model = dict(
    backbone=dict(arch=dict(_delete_=True, embed_dims=16, depths=(1, 1),
                            num_heads=(1, 2)),
                  out_indices=(1, ), init_cfg=None),
    head=dict(num_classes=2, in_channels=32), train_cfg=None)
data_preprocessor = dict(num_classes=2)
loader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, type='CustomDataset', data_root='{data}',
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='PackInputs')]))
train_dataloader = val_dataloader = test_dataloader = loader
val_evaluator = test_evaluator = dict(type='Accuracy', topk=(1, ))
train_cfg = dict(max_epochs=1, val_interval=1)
param_scheduler = [dict(type='ConstantLR', factor=1.0)]
custom_hooks = []
'''


def _run_tool(script, *args, unchanged=()):
    """``tools/<script>``'s ``main(args)`` in-process; the files of
    ``unchanged`` must keep their bytes; a non-zero exit raises
    ToolFailed with the tool's message."""
    from tests.helpers import REPO_ROOT, call_tool_main
    before = {path: path.read_bytes() for path in unchanged}
    code = call_tool_main(REPO_ROOT / 'tools' / script, *args)
    for path, data in before.items():
        assert path.read_bytes() == data, f'{path} was changed'
    if code not in (0, None):
        raise ToolFailed(str(code))


def _ckpt_save(tmp_path, name, obj):
    import torch
    torch.save(obj, tmp_path / name)
    return tmp_path / name


def _ckpt_mmboat(tmp_path, family, head=True, **arch):
    """An mmboat checkpoint of a small ImageClassifier of ``family`` (its
    arch dict updated with ``arch``), with or without its head."""
    from tests.helpers import build_classifier
    model = build_classifier(_CKPT_BACKBONES[family],
                             dict(_CKPT_ARCHS[family], **arch), 2)
    weights = {
        k: v
        for k, v in model.state_dict().items()
        if head or not k.startswith('head.')
    }
    return _ckpt_save(tmp_path, f'{family}_mmboat.pth',
                      dict(meta=dict(), state_dict=weights))


def _ckpt_official(tmp_path, family):
    """A copy of the reference mini file of ``family`` in the official
    release format, under the name of a published file."""
    import shutil

    from tests.helpers import reference_fixture
    fixture, name = _CKPT_OFFICIAL[family]
    return shutil.copy(reference_fixture(fixture), tmp_path / name)


def _ckpt_bytes(tmp_path):
    """A .pth file of bytes that are not a checkpoint."""
    (tmp_path / 'bytes.pth').write_bytes(bytes(range(7, 256)) * 4)
    return tmp_path / 'bytes.pth'


def _ckpt_integer_names(tmp_path, top_level=False):
    """A checkpoint whose weight (under 'state_dict', or at its top level)
    is named 0."""
    import torch
    weights = {0: torch.zeros(2)}
    return _ckpt_save(tmp_path, 'int.pth',
                      weights if top_level else dict(state_dict=weights))


def _ckpt_truncated(tmp_path):
    path = _ckpt_mmboat(tmp_path, 'swin')
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return path


def _ckpt_config(tmp_path):
    """The small BOAT-Swin classifier config and its data, in tmp_path."""
    import numpy as np
    from PIL import Image

    from tests.helpers import REPO_ROOT
    for label in ('a', 'b'):
        (tmp_path / 'data' / label).mkdir(parents=True)
        Image.fromarray(np.zeros(
            (32, 32, 3), np.uint8)).save(tmp_path / 'data' / label / '0.png')
    config = tmp_path / f'{tmp_path.name}.py'  # a runner name of its own
    config.write_text(
        _CKPT_CONFIG.format(repo=REPO_ROOT, data=tmp_path / 'data'))
    return config


def _ckpt_test_tool(tmp_path, checkpoint, *options):
    """tools/test.py of the small BOAT-Swin classifier with
    ``checkpoint``, which must keep its bytes."""
    _run_tool(
        'test.py',
        _ckpt_config(tmp_path),
        checkpoint,
        '--work-dir',
        tmp_path / 'work',
        *options,
        unchanged=[checkpoint])


def _ckpt_init(tmp_path, family, checkpoint):
    """A small ``family`` backbone initialised from ``checkpoint``."""
    from mmboat.models import backbones
    cls = getattr(backbones, _CKPT_BACKBONES[family])
    cls(arch=_CKPT_ARCHS[family],
        out_indices=(1, ),
        init_cfg=dict(type='Pretrained',
                      checkpoint=str(checkpoint))).init_weights()


def _ckpt_load_from(tmp_path, checkpoint):
    """What load_from and resume of mmboat's runner (and its tools) use to
    load weights."""
    import torch

    from mmboat.utils.mmengine_compat import load_weights_into
    load_weights_into(torch.nn.Linear(2, 2), str(checkpoint))


class _CkptForeignObject:
    """Pickled as a call of ``print``: unpickling it would run code."""

    def __reduce__(self):
        return print, ('this ran', )


def _ckpt_convert(tmp_path, family, destination, not_writable=False):
    """The converter of ``family`` from a copy of its official mini file to
    ``destination(source)``; the source must keep its bytes."""
    from unittest import mock
    src = _ckpt_official(tmp_path, family)
    access = mock.patch('os.access', return_value=False) if not_writable \
        else mock.MagicMock()
    with access:
        _run_tool(
            f'model_converters/boat_{family}_to_mmboat.py',
            src,
            destination(src),
            unchanged=[src])


def _ckpt_nan(tmp_path, family='swin', count=3):
    """An mmboat checkpoint of a small ``family`` classifier whose first
    ``count`` backbone tensors hold NaN (and one Inf)."""
    import torch
    path = _ckpt_mmboat(tmp_path, family)
    ckpt = torch.load(path, weights_only=True)
    for k in list(ckpt['state_dict'])[:count]:
        ckpt['state_dict'][k] = ckpt['state_dict'][k].clone().fill_(
            float('nan'))
    ckpt['state_dict'][k].view(-1)[0] = float('inf')
    return _ckpt_save(tmp_path, 'nan.pth', ckpt)


def _ckpt_official_nan(tmp_path, family):
    """The weights of the official mini file of ``family``, two of them
    NaN, under the name of a published file."""
    from mmboat.utils import load_checkpoint_file
    ckpt = load_checkpoint_file(_ckpt_official(tmp_path, family))
    where = 'model' if 'model' in ckpt else 'state_dict'
    weights = dict(ckpt[where])
    for k in [k for k in weights if k.endswith('weight')][:2]:
        weights[k] = weights[k].clone().fill_(float('nan'))
    return _ckpt_save(tmp_path, _CKPT_OFFICIAL[family][1], {where: weights})


def _ckpt_convert_nan(tmp_path, family):
    src = _ckpt_official_nan(tmp_path, family)
    _run_tool(
        f'model_converters/boat_{family}_to_mmboat.py',
        src,
        tmp_path / 'out.pth',
        unchanged=[src])
    assert not (tmp_path / 'out.pth').exists()


def _ckpt_export(tmp_path, checkpoint, *options):
    """tools/deployment/export_onnx.py of the small BOAT-Swin classifier
    with ``checkpoint``; no ONNX file may be written."""
    out = tmp_path / 'model.onnx'
    try:
        _run_tool('deployment/export_onnx.py', _ckpt_config(tmp_path),
                  checkpoint, '--shape', '32', '32', '--out', out, *options)
    finally:
        assert not out.exists()


def _ckpt_visualize(tmp_path, checkpoint):
    """tools/analysis_tools/visualize_clusters.py of the small BOAT-Swin
    classifier with ``checkpoint``."""
    config = _ckpt_config(tmp_path)
    _run_tool('analysis_tools/visualize_clusters.py',
              tmp_path / 'data' / 'a' / '0.png', config, checkpoint,
              '--out-dir', tmp_path / 'clusters')


def _ckpt_link(src, kind):
    """A ``kind`` ('symlink' or 'link') of ``src``."""
    import os
    link = src.parent / 'link.pth'
    getattr(os, kind)(src, link)
    return link


CHECKPOINT_CASES = [
    # finding 1: tools/test.py refuses a checkpoint that does not fit
    ('test-tool-other-family', lambda tmp_path: _ckpt_test_tool(
        tmp_path, _ckpt_mmboat(tmp_path, 'cswin')), ToolFailed,
     "holds BOAT-CSWin weights (the mmboat layout of "
     "BOATCSWinTransformer), but this model's backbone is "
     'BOATSwinTransformer (BOAT-Swin)'),
    ('test-tool-other-arch', lambda tmp_path: _ckpt_test_tool(
        tmp_path, _ckpt_mmboat(tmp_path, 'swin', embed_dims=32)), ToolFailed,
     'backbone.patch_embed.projection.weight: checkpoint (32, 3, 4, 4) vs '
     'model (16, 3, 4, 4)'),
    ('test-tool-no-head', lambda tmp_path: _ckpt_test_tool(
        tmp_path, _ckpt_mmboat(tmp_path, 'swin', head=False)), ToolFailed,
     'missing weights (2):\n  head.fc.weight\n  head.fc.bias\n'),
    ('test-tool-official-release-file', lambda tmp_path: _ckpt_test_tool(
        tmp_path, _ckpt_official(tmp_path, 'swin')), ToolFailed,
     "tiny.pth is an official BOAT-Swin / Swin release file (Swin training "
     "format, weights under 'model'), not an mmboat checkpoint: convert it "
     'first with\n    python tools/model_converters/boat_swin_to_mmboat.py'),
    ('test-tool-truncated',
     lambda tmp_path: _ckpt_test_tool(tmp_path, _ckpt_truncated(tmp_path)),
     ToolFailed, 'the file looks truncated or corrupt'),
    ('train-tool-load-from-other-family', lambda tmp_path: _run_tool(
        'train.py', _ckpt_config(tmp_path), '--work-dir', tmp_path / 'work',
        '--cfg-options', f'load_from={_ckpt_mmboat(tmp_path, "cswin")}'),
     ToolFailed, 'holds BOAT-CSWin weights'),
    # finding 7: init_cfg names the family of a file of the other one
    ('init-cfg-official-swin-into-cswin', lambda tmp_path: _ckpt_init(
        tmp_path, 'cswin', _ckpt_official(tmp_path, 'swin')), CheckpointError,
     'is an official BOAT-Swin / Swin release file (Swin '
     "training format, weights under 'model'), not an mmboat checkpoint, "
     'and of the other family'),
    ('init-cfg-mmboat-cswin-into-swin', lambda tmp_path: _ckpt_init(
        tmp_path, 'swin', _ckpt_mmboat(tmp_path, 'cswin')), CheckpointError,
     "holds BOAT-CSWin weights (the mmboat layout of BOATCSWinTransformer), "
     "but this model's backbone is BOATSwinTransformer"),
    ('init-cfg-mmboat-swin-into-cswin', lambda tmp_path: _ckpt_init(
        tmp_path, 'cswin', _ckpt_mmboat(tmp_path, 'swin')), CheckpointError,
     'holds BOAT-Swin weights (the mmboat layout of BOATSwinTransformer)'),
    ('init-cfg-integer-names', lambda tmp_path: _ckpt_init(
        tmp_path, 'swin', _ckpt_integer_names(tmp_path)), CheckpointError,
     'holds weights whose names are not strings (0)'),
    # finding 8: load_from / resume of files that are not checkpoints
    ('load-from-random-bytes',
     lambda tmp_path: _ckpt_load_from(tmp_path, _ckpt_bytes(tmp_path)),
     CheckpointError,
     'is not a PyTorch checkpoint: it is neither a zip archive'),
    ('load-from-truncated',
     lambda tmp_path: _ckpt_load_from(tmp_path, _ckpt_truncated(tmp_path)),
     CheckpointError, 'is a damaged zip archive: the file looks truncated'),
    ('load-from-integer-names',
     lambda tmp_path: _ckpt_load_from(tmp_path, _ckpt_integer_names(tmp_path)),
     CheckpointError,
     "its 'state_dict' holds weights whose names are not strings (0)"),
    ('load-from-integer-names-top-level', lambda tmp_path: _ckpt_load_from(
        tmp_path, _ckpt_integer_names(tmp_path, top_level=True)),
     CheckpointError,
     'its top level holds weights whose names are not strings (0)'),
    ('load-from-official-release-file', lambda tmp_path: _ckpt_load_from(
        tmp_path, _ckpt_official(tmp_path, 'cswin')), CheckpointError,
     'is an official BOAT-CSWin / CSWin release file (timm training format'),
    # issue 22: weights that hold NaN or Inf, wherever they are loaded
    # (the first names and the count; cheap: one isfinite per tensor)
    ('init-cfg-nan-weights',
     lambda tmp_path: _ckpt_init(tmp_path, 'swin', _ckpt_nan(tmp_path)),
     CheckpointError,
     '3 tensors hold NaN or Inf: patch_embed.projection.weight, '
     'patch_embed.projection.bias, patch_embed.norm.weight: the file is '
     'damaged, or was saved by a run whose training diverged'),
    ('load-from-nan-weights',
     lambda tmp_path: _ckpt_load_from(tmp_path, _ckpt_nan(tmp_path)),
     CheckpointError, '3 tensors hold NaN or Inf: backbone.patch_embed.'
     'projection.weight'),
    ('load-from-many-nan-weights',
     lambda tmp_path: _ckpt_load_from(tmp_path, _ckpt_nan(tmp_path, count=9)),
     CheckpointError,
     '9 tensors hold NaN or Inf: backbone.patch_embed.projection.weight, '
     'backbone.patch_embed.projection.bias, backbone.patch_embed.norm.'
     'weight, backbone.patch_embed.norm.bias, backbone.stages.0.blocks.0.'
     'norm1.weight, ...'),
    ('test-tool-nan-weights',
     lambda tmp_path: _ckpt_test_tool(tmp_path, _ckpt_nan(tmp_path)),
     ToolFailed, 'tensors hold NaN or Inf'),
    ('export-nan-weights',
     lambda tmp_path: _ckpt_export(tmp_path, _ckpt_nan(tmp_path)), ToolFailed,
     'tensors hold NaN or Inf'),
    ('convert-swin-nan-source',
     lambda tmp_path: _ckpt_convert_nan(tmp_path, 'swin'), ToolFailed,
     "2 tensors hold NaN or Inf: patch_embed.proj.weight, patch_embed."
     "norm.weight: the file is damaged (an interrupted download?); "
     'download the published checkpoint again'),
    ('convert-cswin-nan-source',
     lambda tmp_path: _ckpt_convert_nan(tmp_path, 'cswin'), ToolFailed,
     '2 tensors hold NaN or Inf: stage1_conv_embed.0.weight'),
    # issue 22: every tool that loads weights refuses those that do not
    # fit through one function (mmboat.apis.load_model_weights), with the
    # same escape, --allow-partial (tests/tools/test_one_weight_loader.py)
    ('export-backbone-other-family',
     lambda tmp_path: _ckpt_export(tmp_path, _ckpt_mmboat(tmp_path, 'cswin')),
     ToolFailed, 'holds BOAT-CSWin weights'),
    ('export-backbone-not-fitting-names-the-escape',
     lambda tmp_path: _ckpt_export(
         tmp_path, _ckpt_mmboat(tmp_path, 'swin', embed_dims=32)), ToolFailed,
     'pass --allow-partial (tools/train.py, tools/test.py, the demo, '
     'export_onnx.py, visualize_clusters.py)'),
    ('export-whole-model-other-family', lambda tmp_path: _ckpt_export(
        tmp_path, _ckpt_mmboat(tmp_path, 'cswin'), '--whole-model'),
     ToolFailed, 'holds BOAT-CSWin weights'),
    ('visualize-clusters-other-family', lambda tmp_path: _ckpt_visualize(
        tmp_path, _ckpt_mmboat(tmp_path, 'cswin')), ToolFailed,
     'holds BOAT-CSWin weights'),
    ('load-from-foreign-object', lambda tmp_path: _ckpt_load_from(
        tmp_path,
        _ckpt_save(tmp_path, 'foreign.pth', {
            'state_dict': {},
            'meta': _CkptForeignObject()
        })), CheckpointError,
     'print besides tensors and MMEngine training state'),
    # finding 2: the converters never touch their source
    ('convert-to-the-source',
     lambda tmp_path: _ckpt_convert(tmp_path, 'swin', lambda src: src),
     ToolFailed, 'is the source file'),
    ('convert-to-a-symlink-to-the-source', lambda tmp_path: _ckpt_convert(
        tmp_path, 'cswin', lambda src: _ckpt_link(src, 'symlink')), ToolFailed,
     'is the source file'),
    ('convert-to-a-hard-link-to-the-source', lambda tmp_path: _ckpt_convert(
        tmp_path, 'swin', lambda src: _ckpt_link(src, 'link')), ToolFailed,
     '(through a link)'),
    ('convert-to-a-directory',
     lambda tmp_path: _ckpt_convert(tmp_path, 'cswin', lambda src: src.parent),
     ToolFailed, 'is a directory: give the path of the .pth file to write'),
    ('convert-under-a-file', lambda tmp_path: _ckpt_convert(
        tmp_path, 'swin', lambda src: src / 'out.pth'), ToolFailed,
     'is a file, not a folder, so the folder'),
    ('convert-to-a-folder-not-writable', lambda tmp_path: _ckpt_convert(
        tmp_path,
        'swin',
        lambda src: src.parent / 'out.pth',
        not_writable=True), ToolFailed,
     'its folder is not writable; give a destination in a folder you can '
     'write'),
]

# -------------------------------------------------------------- tools
# command-line arguments of tools/: a config path that is not a file ends
# train.py / test.py with a message (mmboat/utils/runner_cli.py), never a
# traceback. (tools/demo/image_demo.py already named a missing config.)


def _tool_main(script, *args):
    """``tools/<script>``'s ``main(args)`` in this process (no interpreter
    start: tests/tools/test_cli_convention.py runs every script as a
    command), from the repository root: no traceback in its output, and
    ToolFailed with that output when it exits non-zero."""
    import contextlib
    import io
    import os

    from tests.helpers import REPO_ROOT, call_tool_main
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(REPO_ROOT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = call_tool_main(REPO_ROOT / 'tools' / script, *args)
    finally:
        os.chdir(cwd)
    text = out.getvalue()
    assert 'Traceback' not in text, text
    if code not in (0, None):
        raise ToolFailed(f'{text}{code}')


_TINY_CLS = 'configs/tiny/boat-swin-nano_tiny-shapes.py'

TOOL_CASES = [
    # finding 9: a config path that does not exist
    ('train-config-missing',
     lambda tmp_path: _tool_main('train.py', tmp_path / 'absent.py'),
     ToolFailed, 'absent.py does not exist: give the path of a .py config; '
     "mmboat's are under"),
    ('test-config-missing-close-names', lambda tmp_path: _run_tool(
        'test.py', 'configs/tiny/boat-swin-nano_tinyshapes.py', 'x.pth'),
     ToolFailed, 'configs/tiny/boat-swin-nano_tiny-shapes.py'),
    ('test-config-is-a-directory',
     lambda tmp_path: _run_tool('test.py', tmp_path, 'x.pth'), ToolFailed,
     'is a directory, not a config file'),
    ('train-config-missing-in-process',
     lambda tmp_path: _run_tool('train.py', tmp_path / 'absent.py'),
     ToolFailed, 'absent.py does not exist'),
    ('test-checkpoint-missing', lambda tmp_path: _run_tool(
        'test.py', _ckpt_config(tmp_path), tmp_path / 'absent.pth'),
     ToolFailed, 'absent.pth does not exist'),
    # the analysis tools: a missing config, a bad input size
    ('get-flops-config-missing', lambda tmp_path: _tool_main(
        'analysis_tools/get_flops.py', tmp_path / 'absent.py'), ToolFailed,
     'absent.py does not exist; give the path of a .py config'),
    ('get-flops-bad-shape', lambda tmp_path: _tool_main(
        'analysis_tools/get_flops.py', _TINY_CLS, '--shape', '0', '64'),
     ToolFailed, '--shape takes H W or one size > 0'),
    ('benchmark-bad-shape', lambda tmp_path: _tool_main(
        'analysis_tools/benchmark.py', _TINY_CLS, '--shape', '0', '64'),
     ToolFailed, '--shape 0 64'),
    ('visualize-clusters-image-missing',
     lambda tmp_path: _tool_main('analysis_tools/visualize_clusters.py',
                                 tmp_path / 'absent.jpg', _TINY_CLS),
     ToolFailed, 'absent.jpg'),
]


def _tool_in(tmp_path, script, *args):
    """``tools/<script>``'s ``main(args)`` in-process, run from
    ``tmp_path`` (a folder without data); nothing may be written there."""
    import os
    before = sorted(tmp_path.iterdir())
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        _run_tool(script, *args)
    finally:
        os.chdir(cwd)
        assert sorted(tmp_path.iterdir()) == before, 'the tool wrote files'


def _tool_checkpoint(tmp_path):
    (tmp_path / 'any.pth').write_bytes(b'not read')
    return tmp_path / 'any.pth'


_REPO = Path(__file__).resolve().parents[1]
#: the tiny classifier config, by its absolute path (tools run elsewhere)
_REPO_CONFIG = str(_REPO / _TINY_CLS)

TOOL_CASES += [
    # issue 22: a --cfg-options key that is a misspelling of an existing
    # one (was a TypeError inside the training loop); new keys are added
    ('train-cfg-options-misspelt', lambda tmp_path: _run_tool(
        'train.py', _REPO_CONFIG, '--work-dir', tmp_path / 'work',
        '--cfg-options', 'train_cfg.max_epoch=1', 'randomness.seed=1'),
     ToolFailed, "--cfg-options train_cfg.max_epoch: 'train_cfg' has no key "
     "'max_epoch'; did you mean train_cfg.max_epochs?"),
    ('test-cfg-options-misspelt', lambda tmp_path: _run_tool(
        'test.py', _REPO_CONFIG, _tool_checkpoint(tmp_path), '--cfg-options',
        'model.backbone.drop_path_rat=0'), ToolFailed,
     'did you mean model.backbone.drop_path_rate?'),
    ('quick-start-cfg-options-misspelt', lambda tmp_path: _run_tool(
        'quick_start.py', 'cls', '--data-root', tmp_path / 'data',
        '--work-dir', tmp_path / 'work', '--cfg-options',
        'train_cfg.max_epoch=1'), ToolFailed,
     'did you mean train_cfg.max_epochs?'),
    # issue 22: no dataset on disk (was a FileNotFoundError of a folder):
    # the tiny data's one command, or what a zoo config reads and where
    ('test-tool-tiny-data-missing', lambda tmp_path: _tool_in(
        tmp_path, 'test.py', _REPO_CONFIG, _tool_checkpoint(tmp_path)),
     ToolFailed, 'the data of test_dataloader is missing: data/tiny_shapes/'
     'imagenet/ does not exist'),
    ('train-tool-tiny-data-one-command',
     lambda tmp_path: _tool_in(tmp_path, 'train.py', _REPO_CONFIG), ToolFailed,
     'make_tiny_datasets.py --out-dir data/tiny_shapes --tasks cls'),
    ('test-tool-coco-missing', lambda tmp_path: _tool_in(
        tmp_path, 'test.py', _REPO /
        'configs/boat_swin/mask-rcnn_boat-swin-t_fpn_1x_coco.py',
        _tool_checkpoint(tmp_path)), ToolFailed,
     'data/coco/ does not exist (looked for'),
    ('train-tool-ade20k-layout', lambda tmp_path: _tool_in(
        tmp_path, 'train.py', _REPO /
        'configs/boat_cswin/upernet_boat-cswin-t_8xb2-160k_ade20k-512x512.py'),
     ToolFailed, 'This config reads:\n    data/ade/ADEChallengeData2016\n'
     '    data/ade/ADEChallengeData2016/images/training'),
    ('test-tool-imagenet-guide', lambda tmp_path: _tool_in(
        tmp_path, 'test.py', _REPO /
        'configs/boat_swin/boat-swin-t_16xb64_in1k.py',
        _tool_checkpoint(tmp_path)), ToolFailed,
     'https://mmpretrain.readthedocs.io/en/latest/user_guides/'
     'dataset_prepare.html'),
    # issue 22: sizes that argparse refuses (was a picture 99 px wide)
    ('visualize-clusters-panel-size-0',
     lambda tmp_path: _tool_main('analysis_tools/visualize_clusters.py',
                                 'x.jpg', _TINY_CLS, '--panel-size', '0'),
     ToolFailed, "argument --panel-size: '0' is not an integer >= 1"),
]


def _tool_image(tmp_path, name='scene.jpg'):
    """A small picture for the demo, in tmp_path."""
    import numpy as np
    from PIL import Image
    path = tmp_path / name
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(path)
    return path


def _tool_same_stem(tmp_path):
    """A folder of scene.jpg and scene.png: both would be drawn to one
    picture."""
    folder = tmp_path / 'both'
    folder.mkdir()
    _tool_image(folder, 'scene.jpg'), _tool_image(folder, 'scene.png')
    return folder


def _tool_a_file(tmp_path, name='out.txt'):
    (tmp_path / name).write_text('a file')
    return tmp_path / name


def _tool_users_data(tmp_path):
    """A folder of a user's COCO annotations and ImageNet class folder."""
    root = tmp_path / 'data'
    (root / 'coco' / 'annotations').mkdir(parents=True)
    (root / 'coco' / 'annotations' / 'instances_train.json').write_text('{}')
    (root / 'imagenet' / 'train' / 'n01440764').mkdir(parents=True)
    return root


def _tool_shell(script, *args, **env):
    """``bash tools/<script>`` with ``env`` (its Python a no-op: nothing
    may start): no traceback, ToolFailed with its output unless it exits
    0."""
    import os
    import subprocess
    proc = subprocess.run(
        ['bash', str(_REPO / 'tools' / script), *args],
        cwd=_REPO,
        env=dict(os.environ, PYTHON='false', **env),
        text=True,
        capture_output=True)
    assert 'Traceback' not in proc.stderr, proc.stderr
    if proc.returncode:
        raise ToolFailed(proc.stdout + proc.stderr)


def _tool_foreign_global(tmp_path):
    """A complete mmboat checkpoint that also pickles ``os.system``."""
    import os

    class Payload:

        def __reduce__(self):
            return os.system, ('echo this ran', )

    import torch
    path = _ckpt_mmboat(tmp_path, 'swin')
    ckpt = torch.load(path, weights_only=True)
    ckpt['meta'] = Payload()
    return _ckpt_save(tmp_path, 'foreign.pth', ckpt)


_DEMO = 'demo/image_demo.py'
_TINY_DATA = 'misc/make_tiny_datasets.py'
_EXPORT = 'deployment/export_onnx.py'

TOOL_CASES += [
    # issue 22, through the real command lines: the demo's arguments ...
    ('demo-topk-0', lambda tmp_path: _tool_main(_DEMO, _tool_image(
        tmp_path), _TINY_CLS, '--topk', '0'), ToolFailed,
     "argument --topk: '0' is not an integer >= 1"),
    ('demo-two-inputs-one-picture',
     lambda tmp_path: _tool_main(_DEMO, _tool_same_stem(tmp_path), _TINY_CLS,
                                 '--out-dir', tmp_path / 'out'), ToolFailed,
     'would both be drawn to'),
    ('demo-out-dir-is-a-file',
     lambda tmp_path: _tool_main(_DEMO, _tool_image(tmp_path), _TINY_CLS,
                                 '--out-dir', _tool_a_file(tmp_path)),
     ToolFailed, 'out.txt is a file'),
    ('demo-weights-of-the-other-family', lambda tmp_path: _tool_main(
        _DEMO, _tool_image(tmp_path), _TINY_CLS, '--weights',
        _ckpt_mmboat(tmp_path, 'cswin'), '--out-dir', tmp_path / 'out'),
     ToolFailed, 'holds BOAT-CSWin weights'),
    ('demo-device-not-here', lambda tmp_path: _tool_main(
        _DEMO, _tool_image(tmp_path), _TINY_CLS, '--device', 'cuda:99',
        '--out-dir', tmp_path / 'out'), ToolFailed, "device 'cuda:99'"),
    # ... the generator's (and it never writes into a user's folder) ...
    ('make-tiny-datasets-seed-negative', lambda tmp_path: _tool_main(
        _TINY_DATA, '--out-dir', tmp_path / 'data', '--seed', '-1'),
     ToolFailed, "argument --seed: '-1' is not a non-negative integer"),
    ('make-tiny-datasets-out-dir-is-a-file', lambda tmp_path: _tool_main(
        _TINY_DATA, '--out-dir', _tool_a_file(tmp_path)), ToolFailed,
     'is a file'),
    ('make-tiny-datasets-users-folder', lambda tmp_path: _tool_main(
        _TINY_DATA, '--out-dir', _tool_users_data(tmp_path), '--tasks', 'det',
        'cls'), ToolFailed, 'already holds files that tiny-shapes did not '
     'write'),
    # ... dist_train.sh's number of GPUs ...
    ('dist-train-gpus-0',
     lambda tmp_path: _tool_shell('dist_train.sh', _TINY_CLS, '0'), ToolFailed,
     "GPUS must be a whole number >= 1, got '0'"),
    ('dist-train-gpus-two',
     lambda tmp_path: _tool_shell('dist_train.sh', _TINY_CLS, 'two'),
     ToolFailed, "GPUS must be a whole number >= 1, got 'two'"),
    # ... the exporter's opset and destination, checked before any work
    # (no file is written: tests/deployment/test_onnx.py) ...
    ('export-opset-7',
     lambda tmp_path: _tool_main(_EXPORT, _TINY_CLS, '--shape', '32', '32',
                                 '--opset', '7', '--out', tmp_path / 'x.onnx'),
     ToolFailed, 'opset 7 is not supported'),
    ('export-opset-99', lambda tmp_path: _tool_main(
        _EXPORT, _TINY_CLS, '--shape', '32', '32', '--opset', '99', '--out',
        tmp_path / 'x.onnx'), ToolFailed, 'opset 99 is not supported'),
    ('export-out-is-a-directory', lambda tmp_path: _tool_main(
        _EXPORT, _TINY_CLS, '--shape', '32', '32', '--out', tmp_path),
     ToolFailed, 'is a folder: give the path of the .onnx file'),
    # ... a converter's source that is a directory (was "not found") ...
    ('convert-source-is-a-directory',
     lambda tmp_path: _tool_main('model_converters/boat_swin_to_mmboat.py',
                                 tmp_path, tmp_path / 'out.pth'), ToolFailed,
     'is a directory, not a checkpoint file: give '
     'the path of the .pth file itself'),
    ('test-checkpoint-is-a-directory',
     lambda tmp_path: _tool_main('test.py', _TINY_CLS, tmp_path), ToolFailed,
     'is a directory, not a checkpoint file'),
    # ... and a complete pickle with a forbidden global (was "a damaged
    # pickle ... truncated"): the objects are named, nothing runs
    ('test-tool-os-system-in-pickle', lambda tmp_path: _ckpt_test_tool(
        tmp_path, _tool_foreign_global(tmp_path)), ToolFailed,
     'system besides tensors and MMEngine training state'),
]

# --------------------------------------------------------------- timm
# the timm entry (mmboat/timm): weights come from a converted file only


def _timm(**kwargs):
    import timm

    import mmboat.timm  # noqa: F401
    timm.create_model('boat_swin_tiny', **kwargs)


TIMM_CASES = [
    ('timm-pretrained-without-file', lambda tmp_path: _timm(pretrained=True),
     RuntimeError, 'No pretrained weights exist for boat_swin_tiny to '
     'download: mmboat publishes no URL. Convert the published BOAT-Swin-T '
     'weights (tiny.pth) and give the converted file:\n    python '
     'tools/model_converters/boat_swin_to_mmboat.py tiny.pth'),
    ('timm-pretrained-file-missing', lambda tmp_path: _timm(
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(tmp_path / 'absent.pth'))),
     FileNotFoundError, 'absent.pth of boat_swin_tiny does not exist. '
     'Convert the published'),
    ('timm-nan-weights', lambda tmp_path: _timm(
        pretrained=True,
        arch=_CKPT_ARCHS['swin'],
        pretrained_cfg_overlay=dict(
            file=str(_ckpt_nan(tmp_path)), num_classes=2)), CheckpointError,
     '3 tensors hold NaN or Inf'),
    ('timm-num-classes-negative', lambda tmp_path: _timm(num_classes=-1),
     ValueError, 'num_classes=-1 is not allowed: it must be an int >= 0. '
     'Fix: num_classes=0 for no classifier'),
]

CASES = MODEL_CASES + CHECKPOINT_CASES + TOOL_CASES + TIMM_CASES


@pytest.mark.parametrize('action, error, fragment',
                         [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_input_is_refused(tmp_path, action, error, fragment):
    with pytest.raises(
            error, match=re.compile(re.escape(fragment), re.IGNORECASE)):
        action(tmp_path)
