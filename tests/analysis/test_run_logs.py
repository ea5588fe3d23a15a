"""mmboat.analysis.run_logs.start_step: a run whose backbone starts from a
shipped checkpoint (a second cycle) counts its steps on from it."""
import json
from pathlib import Path

from mmengine.config import Config

from mmboat.analysis.run_logs import start_step
from mmboat.utils.checkpoint import SHIPPED_MANIFEST

TINY = Path(__file__).resolve().parents[2] / 'configs' / 'tiny'
MANIFEST = json.loads(Path(SHIPPED_MANIFEST).read_text())


def test_a_second_cycle_counts_on_from_its_shipped_backbone():
    first = 'boat-swin-nano-nofsla_stream-pretrain_tiny-shapes'
    second = Config.fromfile(
        str(TINY /
            'boat-swin-nano-nofsla_stream-pretrain-cycle2_tiny-shapes.py'))
    assert second.model.backbone.init_cfg.checkpoint.endswith(f'{first}.pth')
    assert start_step(second) == MANIFEST[f'tiny_shapes/{first}.pth']['steps']
    assert start_step(second) == 20000


def test_a_run_from_scratch_starts_at_step_0():
    cfg = Config.fromfile(
        str(TINY / 'boat-swin-nano-nofsla_stream-pretrain_tiny-shapes.py'))
    assert start_step(cfg) == 0
