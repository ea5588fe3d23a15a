"""The checkpoints shipped in mmboat/checkpoints/: each is listed in the
manifest with the sha256 it has, holds float32 weights of what the manifest
says, and loads into every config that uses it with no missing or
unexpected key."""
import hashlib
import json
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS

import mmboat  # noqa: F401
from mmboat.utils import load_checkpoint_file
from mmboat.utils.checkpoint import SHIPPED_DIR, SHIPPED_SCHEME

REPO = Path(__file__).resolve().parents[1]
MANIFEST = Path(SHIPPED_DIR) / 'manifest.json'
ENTRIES = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
FIELDS = {
    'config', 'commit', 'steps', 'epochs', 'schedule_epochs', 'wall_minutes',
    'val_top1', 'sha256', 'command'
}


def configs_using(name):
    """The configs whose backbone init_cfg (or teacher) reads ``name``."""
    found = []
    for path in sorted((REPO / 'configs').rglob('*.py')):
        text = path.read_text()
        if f"'{SHIPPED_SCHEME}" in text or 'tiny_shapes/' in text:
            cfg = Config.fromfile(str(path))
            init = cfg.model.get('backbone', {}).get('init_cfg') or {}
            teacher = cfg.model.get('distill') or {}
            if SHIPPED_SCHEME + name in (init.get('checkpoint'),
                                         teacher.get('checkpoint')):
                found.append(cfg)
    return found


def test_every_shipped_file_is_in_the_manifest():
    files = {
        str(p.relative_to(SHIPPED_DIR))
        for p in Path(SHIPPED_DIR).rglob('*.pth')
    }
    assert files == set(ENTRIES)


@pytest.mark.parametrize('name', sorted(ENTRIES))
def test_shipped_checkpoint_matches_its_manifest(name):
    entry = ENTRIES[name]
    # val_curve: recorded since 2026-12-07 (the earlier runs' logs are gone)
    assert set(entry) - {'val_curve'} == FIELDS
    curve = entry.get('val_curve', [[entry['steps'], entry['val_top1']]])
    steps = [step for step, _ in curve]
    assert steps == sorted(
        set(steps)) and curve[-1] == [entry['steps'], entry['val_top1']]
    # an interim checkpoint of a longer run says which epoch it is
    assert 0 < entry['epochs'] <= entry['schedule_epochs']
    if entry['epochs'] < entry['schedule_epochs']:
        assert f'--checkpoint WORK_DIR/epoch_{entry["epochs"]}.pth' in \
            entry['command']
    path = Path(SHIPPED_DIR) / name
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry['sha256']
    assert (REPO / entry['config']).is_file()
    assert Path(entry['config']).stem in name
    ckpt = load_checkpoint_file(str(path))
    state_dict = ckpt['state_dict']
    assert all(
        v.dtype in (torch.float32, torch.int64) for v in state_dict.values())
    assert all(torch.isfinite(v).all() for v in state_dict.values())
    parts = {k.split('.')[0] for k in state_dict}
    teacher = name.startswith('tiny_shapes/resnet')
    # the teacher's neck (global average pooling) has no weights
    assert parts == ({'backbone', 'head'} if teacher else {'backbone'})
    assert path.stat().st_size < 16 * 2**20


@pytest.mark.parametrize('name', sorted(ENTRIES))
def test_shipped_checkpoint_loads_into_its_configs(name):
    """Every config that names the file loads it without a missing or
    unexpected key (the backbone's loader refuses any), and the pretraining
    config that made it is among them or is its source."""
    users = configs_using(name)
    assert users, f'no config uses {name}'
    state_dict = load_checkpoint_file(str(Path(SHIPPED_DIR) /
                                          name))['state_dict']
    for cfg in users:
        init = cfg.model.backbone.get('init_cfg') or {}
        if init.get('checkpoint') == SHIPPED_SCHEME + name:
            backbone = MODELS.build(cfg.model.backbone)
            backbone.init_weights()  # raises on any misfit
            own = backbone.state_dict()
            assert {'backbone.' + k for k in own} == set(state_dict)
            for k, v in own.items():
                assert torch.equal(v, state_dict['backbone.' + k]), k
        else:  # the teacher of a distillation
            model = MODELS.build(cfg.model)
            model.init_weights()
            teacher = model.teacher.state_dict()
            assert teacher.keys() == state_dict.keys()
            assert all(torch.equal(teacher[k], state_dict[k]) for k in teacher)
