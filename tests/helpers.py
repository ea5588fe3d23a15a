"""Helpers shared by the tests: import them from here (``tests.helpers``).

Fixtures shared by several test folders are in ``tests/conftest.py``.
"""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_FIXTURES = (
    REPO_ROOT.parent / 'shared' / 'fixtures' / 'boat-reference')


def reference_fixture(name: str) -> Path:
    """Path of a file produced by the published BOAT code, or skip."""
    path = REFERENCE_FIXTURES / name
    if not path.is_file():
        pytest.skip(f'reference fixture {path} is absent: these tests need '
                    'the ../shared/fixtures/boat-reference/ folder beside '
                    'the repository (CI always has it)')
    return path


def reference_arch(arch: dict) -> dict:
    """The mmboat arch dict of the model of a reference fixture, from the
    ``arch`` entry of its ``*_io.pth`` file (names of the released code)."""
    mmboat_arch = dict(
        embed_dims=arch['embed_dim'],
        depths=tuple(arch.get('depths', arch.get('depth'))),
        num_heads=tuple(arch['num_heads']))
    if 'split_size' in arch:  # BOAT-CSWin
        mmboat_arch['split_sizes'] = tuple(arch['split_size'])
    return mmboat_arch


def published_fsla_module(name: str):
    """``(module, ref)``: the FSLA module of a reference fixture
    (``fsla_module_*.pth``) with its weights, in float64 eval mode, and
    the fixture's dict (``input``, ``output``, ``arch``)."""
    import torch

    from mmboat.models.layers import FeatureSpaceLocalAttention
    ref = torch.load(reference_fixture(name), weights_only=True)
    arch = ref['arch']
    module = FeatureSpaceLocalAttention(
        arch['dim'],
        arch['num_heads'],
        cluster_size=arch['cluster_size'],
        overlap=arch['overlap'],
        qk_scale=arch['qk_scale'])
    module.load_state_dict(ref['state_dict'])
    return module.double().eval(), ref


def run_tool(script: Path, *args) -> subprocess.CompletedProcess:
    """Run a script of tools/ in a fresh interpreter from the repo root."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(REPO_ROOT), env.get('PYTHONPATH', '')])
    return subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300)


def load_tool(script: Path):
    """A tools/ script loaded as a module, e.g. to call its ``main(argv)``
    in this process."""
    spec = importlib.util.spec_from_file_location(script.stem, script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def call_tool_main(script: Path, *args):
    """A tools/ script's ``main(argv)`` in-process: its SystemExit code, or
    0 when it returns."""
    module = load_tool(script)
    try:
        module.main([str(a) for a in args])
    except SystemExit as e:
        return e.code
    return 0


def doc_block(page: str, marker: str) -> str:
    """The text of the one fenced block of ``page`` (a path from the
    repository root) that contains ``marker``: for tests that run a block
    of the docs themselves (its doc-test mark is then ``skip``)."""
    from tests.test_docs import read_blocks
    found = [b.text for b in read_blocks(page) if marker in b.text]
    assert len(found) == 1, f'{len(found)} blocks of {page} hold {marker!r}'
    return found[0]


def rel_err(out, ref) -> float:
    """Relative error: norm of the difference / norm of the reference."""
    return ((out - ref).norm() / ref.norm()).item()


def build_classifier(backbone: str, arch: dict, num_classes: int):
    """An mmpretrain ImageClassifier around an mmboat backbone (its last
    stage out), GlobalAveragePooling and a LinearClsHead."""
    pytest.importorskip('mmpretrain')
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    import mmboat.models  # noqa: F401 (registers the backbones)
    last = len(arch['depths']) - 1
    cfg = dict(
        type='ImageClassifier',
        backbone=dict(type=backbone, arch=arch, out_indices=(last, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=num_classes,
            in_channels=arch['embed_dims'] * 2**last))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg)


def run_classifier(model, x):
    """Logits of a classifier and the output of the last block of every
    stage of its backbone."""
    import torch
    stage_outputs = {}
    hooks = [
        stage.blocks[-1].register_forward_hook(
            lambda m, args, out, i=i: stage_outputs.__setitem__(i, out))
        for i, stage in enumerate(model.backbone.stages)
    ]
    with torch.no_grad():
        logits = model(x)
    for h in hooks:
        h.remove()
    return logits, [stage_outputs[i] for i in range(len(stage_outputs))]


def count_params(model) -> int:
    """Number of parameters of a model."""
    return sum(p.numel() for p in model.parameters())


def fsla_map(backbone):
    """Per stage, the indices of the blocks of a BOAT backbone that have
    FSLA."""
    return tuple(
        tuple(j for j, b in enumerate(stage.blocks) if b.fsla is not None)
        for stage in backbone.stages)
