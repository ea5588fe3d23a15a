"""README command 1 (tools/setup_env.sh): idempotent, and clear when a
prerequisite is missing."""
import os
import subprocess

from tests.helpers import REPO_ROOT


def run_setup(**env):
    script = REPO_ROOT / 'tools' / 'setup_env.sh'
    return subprocess.run(['bash', str(script)],
                          cwd=REPO_ROOT,
                          capture_output=True,
                          text=True,
                          timeout=600,
                          env=dict(os.environ, **env))


def test_missing_python_is_named(tmp_path):
    proc = run_setup(
        MMBOAT_PYTHON='python3.11-that-does-not-exist',
        MMBOAT_VENV=str(tmp_path / 'venv'))
    assert proc.returncode != 0
    assert "no 'python3.11-that-does-not-exist' found" in proc.stderr
    assert 'Python 3.11' in proc.stderr
    assert not (tmp_path / 'venv').exists()


def test_second_run_installs_nothing():
    # the test suite runs inside the environment the script made
    proc = run_setup()
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert 'using the existing virtual environment' in out
    assert 'torch 2.14.1 / torchvision 0.29.1 already installed' in out
    assert 'mmcv 2.1.0 with compiled ops already installed' in out
    assert 'already installed' in out.split('mmcv 2.1.0 with compiled ops')[1]
    assert 'building mmcv' not in out and 'installing' not in out.replace(
        'already installed', '')


def test_mmcv_is_built_with_its_compiled_ops():
    """The setup compiles mmcv (no binary wheel for this torch): its ops
    (nms, RoIAlign) load and compute the right numbers on the CPU."""
    import torch
    from mmcv.ops import RoIAlign, nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.],
                          [20., 20., 30., 30.], [0., 0., 9., 9.]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [3, 2]
    torch.testing.assert_close(dets[:, 4], torch.tensor([0.95, 0.7]))
    # RoIAlign (aligned, one sample per bin) of a 4x4 ramp: the ramp at the
    # bin centres, pixels 0.5 and 2.5
    feat = torch.arange(16.).view(1, 1, 4, 4)
    rois = torch.tensor([[0., 0., 0., 4., 4.]])
    out = RoIAlign((2, 2), spatial_scale=1., sampling_ratio=1,
                   aligned=True)(feat, rois)
    torch.testing.assert_close(out, torch.tensor([[[[2.5, 4.5], [10.5,
                                                                 12.5]]]]))
