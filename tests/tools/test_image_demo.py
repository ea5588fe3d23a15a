"""tools/demo/image_demo.py: a picture for a detection, a segmentation and
a classification config, one per image of a folder, and clear errors."""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmboat.datasets import draw_scene

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / 'tools' / 'demo' / 'image_demo.py'
TINY = REPO / 'configs' / 'tiny'
CONFIGS = {
    'det': TINY / 'mask-rcnn_boat-swin-nano_fpn_tiny-shapes.py',
    'seg': TINY / 'upernet_boat-swin-nano_tiny-shapes.py',
    'cls': TINY / 'boat-swin-nano_tiny-shapes.py',
}


@pytest.fixture(scope='module')
def demo_main():
    """The demo's ``main(argv)``, loaded in this process."""
    spec = importlib.util.spec_from_file_location('image_demo', DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return lambda *args: module.main([str(a) for a in args])


@pytest.fixture
def image(tmp_path):
    """A 240 x 320 JPEG of tiny-shapes objects."""
    img = draw_scene(np.random.default_rng(1), 320, 3)[0][:240]
    path = tmp_path / 'scene.jpg'
    Image.fromarray(img).save(path, quality=95)
    return path


def read(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert('RGB')).astype(int)


@pytest.mark.slow
# the inference itself is tested per task in tests/apis/test_inference.py;
# here the command line: mmdet keeps the file name, mmpretrain writes PNG
@pytest.mark.parametrize('task', ['det', 'cls'])
def test_demo_draws_predictions(demo_main, task, image, tmp_path, capsys):
    out = tmp_path / 'out'
    demo_main(image, CONFIGS[task], '--out-dir', out, '--score-thr', 0)
    # mmdet / mmseg keep the file name, mmpretrain writes PNG
    picture = out / 'vis' / ('scene.png' if task == 'cls' else 'scene.jpg')
    assert sorted((out / 'vis').iterdir()) == [picture]
    drawn = read(picture)
    assert drawn.shape == (240, 320, 3)
    # far above JPEG noise: boxes / masks, the label map, the class text
    changed = (np.abs(drawn - read(image)) > 40).any(-1).mean()
    assert changed > 0.01
    printed = capsys.readouterr().out
    assert 'wrote 1 picture(s)' in printed
    assert str(picture) in printed
    # the summary names the config's classes
    names = ('circle', 'rectangle', 'star', 'triangle', 'background')
    assert any(name in printed for name in names)


@pytest.mark.slow
def test_demo_folder(image, tmp_path):
    """A fresh interpreter, as a user runs it: one picture per image."""
    folder = tmp_path / 'images'
    folder.mkdir()
    for name in ['b.jpg', 'a.jpg']:
        (folder / name).write_bytes(image.read_bytes())
    (folder / 'readme.txt').write_text('not an image')
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = tmp_path / 'out'
    command = [
        sys.executable, DEMO, folder, CONFIGS['cls'], '--out-dir', out,
        '--topk', '2'
    ]
    proc = subprocess.run(
        command,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (out / 'vis').iterdir()) == \
        ['a.png', 'b.png']
    lines = [
        line for line in proc.stdout.splitlines() if line.startswith(str(out))
    ]
    pictures = [str(out / 'vis' / 'a.png'), str(out / 'vis' / 'b.png')]
    assert [line.split()[0] for line in lines] == pictures
    assert all(line.count(',') == 1 for line in lines)  # top 2 classes


@pytest.mark.parametrize('case,message', [
    ('image', 'input .*nope.jpg does not exist'),
    ('folder', 'holds no image'),
    ('config', 'config file .*nope.py does not exist'),
    ('scope', 'default_scope'),
    ('weights', 'checkpoint .*nope.pth does not exist'),
    ('same-name', 'would both be drawn'),
    ('out-dir-file', 'out_dir .* is a file'),
    ('device', "device 'cuda:7'"),
    ('unreadable', 'none of the inputs is a readable image'),
    ('other-family', 'does not fit the model'),
])
def test_demo_errors(demo_main, case, message, image, tmp_path):
    inputs, config, extra = image, CONFIGS['cls'], []
    out = tmp_path / 'out'
    if case == 'same-name':
        inputs = tmp_path / 'both'
        inputs.mkdir()
        (inputs / 'scene.jpg').write_bytes(image.read_bytes())
        (inputs / 'scene.png').write_bytes(image.read_bytes())
    elif case == 'out-dir-file':
        out = tmp_path / 'out.txt'
        out.write_text('x')
    elif case == 'device':
        extra = ['--device', 'cuda:7']
    elif case == 'unreadable':
        inputs = tmp_path / 'broken.jpg'
        inputs.write_bytes(b'not a jpeg')
    elif case == 'other-family':
        import torch

        from mmboat.apis import build_inferencer
        cswin = build_inferencer(TINY / 'boat-cswin-nano_tiny-shapes.py')
        torch.save(
            dict(state_dict=cswin.model.state_dict()), tmp_path / 'cswin.pth')
        extra = ['--weights', tmp_path / 'cswin.pth']
    elif case == 'image':
        inputs = tmp_path / 'nope.jpg'
    elif case == 'folder':
        inputs = tmp_path / 'empty'
        inputs.mkdir()
    elif case == 'config':
        config = tmp_path / 'nope.py'
    elif case == 'scope':
        config = tmp_path / 'plain.py'
        config.write_text("model = dict(type='Foo')\n")
    else:
        extra = ['--weights', tmp_path / 'nope.pth']
    with pytest.raises(SystemExit) as e:
        demo_main(inputs, config, '--out-dir', out, *extra)
    assert e.value.code.startswith('error: ')
    assert re.search(message, e.value.code)
    assert not (tmp_path / 'out').exists()


def test_demo_topk_is_checked_by_the_command_line(demo_main, image, capsys):
    with pytest.raises(SystemExit) as e:
        demo_main(image, CONFIGS['cls'], '--topk', '0')
    assert e.value.code == 2
    assert "argument --topk: '0' is not an integer >= 1" in \
        capsys.readouterr().err


@pytest.mark.slow
def test_demo_skips_an_unreadable_image_of_a_folder(demo_main, image, tmp_path,
                                                    capsys):
    folder = tmp_path / 'images'
    folder.mkdir()
    (folder / 'a.jpg').write_bytes(image.read_bytes())
    (folder / 'b.jpg').write_bytes(b'truncated')
    with pytest.warns(UserWarning, match='skipping .*b.jpg'):
        demo_main(folder, CONFIGS['cls'], '--out-dir', tmp_path / 'out')
    assert [p.name for p in (tmp_path / 'out' / 'vis').iterdir()] == ['a.png']


@pytest.mark.slow
def test_demo_allow_partial(demo_main, image, tmp_path, capsys):
    """--allow-partial loads what fits (the backbone of a classifier
    checkpoint into the detector) and warns about the rest."""
    import torch

    from mmboat.apis import build_inferencer
    cls = build_inferencer(CONFIGS['cls']).model.state_dict()
    torch.save(dict(state_dict=cls), tmp_path / 'cls.pth')
    with pytest.raises(SystemExit, match='does not fit'):
        demo_main(image, CONFIGS['det'], '--weights', tmp_path / 'cls.pth',
                  '--out-dir', tmp_path / 'out')
    demo_main(image, CONFIGS['det'], '--weights', tmp_path / 'cls.pth',
              '--out-dir', tmp_path / 'out', '--allow-partial')
    assert (tmp_path / 'out' / 'vis' / 'scene.jpg').is_file()
