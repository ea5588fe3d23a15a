"""`import mmboat` alone makes the backbones buildable from the registries
of mmdet, mmsegmentation and mmpretrain (fresh interpreter, default scope of
each library) without importing timm; `import mmboat.timm` adds the BOAT
models to timm's registry."""
import subprocess
import sys

import pytest

SCRIPT = '''
import sys
import torch
import mmboat
assert 'timm' not in sys.modules, 'import mmboat imported timm'
from mmengine.registry import init_default_scope
from {scope}.registry import MODELS
init_default_scope('{scope}')
for cfg in (dict(type='BOATSwinTransformer', arch='tiny'),
            dict(type='BOATCSWinTransformer', arch='tiny')):
    with torch.device('meta'):
        model = MODELS.build(cfg)
    assert type(model).__name__ == cfg['type'], model
import timm
assert 'boat_cswin_tiny' not in timm.list_models('boat*')
import mmboat.timm
with torch.device('meta'):
    model = timm.create_model('boat_cswin_tiny', num_classes=3)
assert type(model).__name__ == 'BOATClassifier' and model.num_classes == 3
print('ok')
'''


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'mmpretrain'])
def test_import_mmboat_registers_backbones(scope):
    script = SCRIPT.format(scope=scope)
    proc = subprocess.run([sys.executable, '-c', script],
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith('ok'), \
        proc.stderr[-2000:]
