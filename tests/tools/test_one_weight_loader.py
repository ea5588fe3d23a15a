"""Every tool loads weights one way: :func:`mmboat.apis.load_model_weights`
(directly, or through ``build_inferencer``), or MMEngine's Runner with
``load_from``, which mmboat's ``SafeCheckpointHook`` checks the same way.

The scripts of tools/ and the modules of mmboat they load models with are
read (``ast``) for the calls that load weights some other way
(``torch.load``, MMEngine's ``load_checkpoint``, ``load_state_dict``, the
backbone's ``load_weights``...): a new tool that loads weights without the
fit check and the NaN check fails here. The tools that take a checkpoint
offer the same ``--allow-partial``.
"""
import ast
from pathlib import Path
from typing import List

import pytest

REPO = Path(__file__).resolve().parents[2]

#: calls that load weights (or read a file unsafely) other than through
#: mmboat.apis.load_model_weights; ``load`` only as ``torch.load``
LOADERS = {
    'load_checkpoint', '_load_checkpoint', '_load_checkpoint_to_model',
    'load_state_dict', 'load_weights', 'load_backbone_weights',
    'load_weights_into', 'load_local_checkpoint', 'load_pretrained',
    'load_from_name'
}
#: the mmboat packages that tools load models with
LIBRARY = ('mmboat/apis', 'mmboat/deployment', 'mmboat/visualization',
           'mmboat/analysis')
#: where those calls are the loading function itself
ALLOWED = {'mmboat/apis/weights.py'}


def loading_calls(source: str) -> List[str]:
    """``line: name`` of every call or import of a loader of
    :data:`LOADERS` (or ``torch.load``) in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(
                func, 'id', None)
            torch_load = name == 'load' and isinstance(
                func, ast.Attribute) and getattr(func.value, 'id',
                                                 None) == 'torch'
            if name in LOADERS or torch_load:
                found.append(f'{node.lineno}: {name}')
        elif isinstance(node, ast.ImportFrom):
            found += [
                f'{node.lineno}: import {a.name}' for a in node.names
                if a.name in LOADERS or (
                    node.module == 'torch' and a.name == 'load')
            ]
    return found


def test_the_scan_finds_other_loaders():
    source = ('import torch\n'
              'from mmengine.runner import load_checkpoint\n'
              'sd = torch.load("x.pth")\n'
              'model.load_state_dict(sd)\n'
              'backbone.load_weights("x.pth")\n'
              'load_checkpoint(model, "x.pth")\n'
              'load_model_weights(model, "x.pth")\n')
    assert loading_calls(source) == [
        '2: import load_checkpoint', '3: load', '4: load_state_dict',
        '5: load_weights', '6: load_checkpoint'
    ]


def _files():
    files = sorted((REPO / 'tools').rglob('*.py'))
    for package in LIBRARY:
        files += sorted((REPO / package).rglob('*.py'))
    return [str(p.relative_to(REPO)) for p in files]


@pytest.mark.parametrize('path', _files())
def test_weights_are_loaded_one_way(path):
    if path in ALLOWED:
        return
    calls = loading_calls((REPO / path).read_text())
    assert not calls, (
        f'{path} loads weights another way than '
        f'mmboat.apis.load_model_weights (or load_from through the Runner): '
        f'{calls}; call load_model_weights(model, checkpoint, '
        'allow_partial) so that the fit and NaN checks apply')


@pytest.mark.parametrize('script', [
    'demo/image_demo.py', 'deployment/export_onnx.py',
    'analysis_tools/visualize_clusters.py', 'train.py', 'test.py'
])
def test_tools_that_load_weights_offer_allow_partial(script):
    from tests.helpers import load_tool
    module = load_tool(REPO / 'tools' / script)
    required = {
        'demo/image_demo.py': ['img.jpg', 'cfg.py'],
        'deployment/export_onnx.py': ['cfg.py', '--shape', '8', '8'],
        'analysis_tools/visualize_clusters.py': ['img.jpg', 'cfg.py'],
        'train.py': ['cfg.py'],
        'test.py': ['cfg.py', 'ckpt.pth'],
    }[script]
    assert module.parse_args(required + ['--allow-partial']).allow_partial


def test_load_model_weights_partial_escape(tmp_path):
    """A bare backbone: weights that do not fit are refused with the
    escape named; with allow_partial those that fit are loaded."""
    import torch

    from mmboat.apis import load_model_weights
    from mmboat.models.backbones import BOATSwinTransformer
    from mmboat.utils import CheckpointError
    arch = dict(embed_dims=16, depths=(1, 1), num_heads=(1, 2))
    source = BOATSwinTransformer(arch=arch, out_indices=(1, ))
    weights = {
        f'backbone.{k}': v
        for k, v in source.state_dict().items()
        if not k.startswith('stages.1.')  # a stage missing
    }
    torch.save(dict(state_dict=weights), tmp_path / 'part.pth')
    model = BOATSwinTransformer(arch=arch, out_indices=(1, ))
    with pytest.raises(
            CheckpointError, match='(?s)missing weights.*pass '
            '--allow-partial'):
        load_model_weights(model, tmp_path / 'part.pth')
    load_model_weights(model, tmp_path / 'part.pth', allow_partial=True)
    own = model.state_dict()
    assert torch.equal(own['patch_embed.projection.weight'],
                       weights['backbone.patch_embed.projection.weight'])


def test_visualize_clusters_allow_partial(tmp_path):
    """visualize_clusters.py refuses a checkpoint of the other family; with
    --allow-partial it loads what fits and goes on (to say that this small
    model, one block per stage, has no FSLA block to draw)."""
    from tests.helpers import call_tool_main
    from tests.test_bad_inputs import _ckpt_config, _ckpt_mmboat
    config = _ckpt_config(tmp_path)
    checkpoint = _ckpt_mmboat(tmp_path, 'cswin')
    args = [
        tmp_path / 'data' / 'a' / '0.png', config, checkpoint, '--out-dir',
        tmp_path / 'out'
    ]
    script = REPO / 'tools' / 'analysis_tools' / 'visualize_clusters.py'
    assert 'holds BOAT-CSWin weights' in str(call_tool_main(script, *args))
    assert 'has no FSLA block' in str(
        call_tool_main(script, *args, '--allow-partial'))
