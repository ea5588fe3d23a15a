"""tools/analysis_tools/model_zoo.py: the counts of the plain Swin / CSWin
models (FSLA removed) match the published FLOPs, and a BOAT config's row
names its published checkpoint and conversion command."""
import importlib.util
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOL = REPO_ROOT / 'tools' / 'analysis_tools' / 'model_zoo.py'
NO_FSLA = 'model.backbone.fsla_blocks=[[],[],[],[]]'


def zoo_rows(capsys, *args):
    """Run the tool's main in-process; its table rows, split in cells."""
    spec = importlib.util.spec_from_file_location('model_zoo', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main([str(a) for a in args])
    out = capsys.readouterr().out
    assert 'multiply-adds of matrix products, convolutions and ' \
        'scaled-dot-product attention' in out
    return [[cell.strip() for cell in line.strip('|').split('|')]
            for line in out.splitlines() if line.startswith('| [')]


def test_classifiers_match_published_flops(capsys):
    """Swin-T 28.3M / 4.5G and CSWin-T 22.3M / 4.3G at 224 (Swin and CSWin
    papers); with FSLA the counts grow and the row names the release."""
    swin = REPO_ROOT / 'configs/boat_swin/boat-swin-t_16xb64_in1k.py'
    cswin = REPO_ROOT / 'configs/boat_cswin/boat-cswin-t_16xb64_in1k.py'
    plain = zoo_rows(capsys, swin, cswin, '--cfg-options', NO_FSLA)
    assert [r[2:5] for r in plain] == [['28.29', '4.5 (224 x 224)', '-'],
                                       ['22.32', '4.3 (224 x 224)', '-']]
    boat = zoo_rows(capsys, swin)[0]
    assert boat[:3] == [
        '[boat-swin-t_16xb64_in1k](configs/boat_swin/'
        'boat-swin-t_16xb64_in1k.py)', 'ImageNet-1k cls.', '30.27'
    ]
    assert float(boat[3].split()[0]) > 4.5
    assert boat[4:] == [
        'BOAT-Swin-T (`tiny.pth`)',
        '`python tools/model_converters/boat_swin_to_mmboat.py tiny.pth '
        'checkpoints/boat-swin-t_in1k_mmboat.pth`'
    ]


@pytest.mark.slow
def test_detector_matches_published_flops(capsys):
    """Swin-T Mask R-CNN: 48M params, 267G FLOPs at 1280 x 800 (Swin paper,
    mmdet's get_flops convention); BOAT-Swin-T adds FSLA on top."""
    det = REPO_ROOT / 'configs/boat_swin/mask-rcnn_boat-swin-t_fpn_1x_coco.py'
    row = zoo_rows(capsys, det, '--cfg-options', NO_FSLA)[0]
    assert row[1:3] == ['COCO det. + inst. seg.', '47.79']
    gflops, size = row[3].split(' ', 1)
    assert float(gflops) == pytest.approx(267, rel=0.01)
    assert size == '(1280 x 800)'
