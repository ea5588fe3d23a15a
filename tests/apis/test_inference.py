"""mmboat.apis: task detection, input listing, clear errors, and inference
with the libraries' inferencers on the tiny configs (class names from the
checkpoint or the config, weights loaded, score threshold, top-k); the
libraries' own inferencers on the zoo configs."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmboat.apis import (build_inferencer, class_names, list_images, task_of,
                         visualize)
from mmboat.datasets import draw_scene

CONFIG_ROOT = Path(__file__).resolve().parents[2] / 'configs'
TINY = CONFIG_ROOT / 'tiny'
CONFIGS = {
    'det': TINY / 'mask-rcnn_boat-swin-nano_fpn_tiny-shapes.py',
    'seg': TINY / 'upernet_boat-swin-nano_tiny-shapes.py',
    'cls': TINY / 'boat-swin-nano_tiny-shapes.py',
}
SHAPES = ('circle', 'rectangle', 'star', 'triangle')


@pytest.fixture
def image(tmp_path):
    """A 240 x 320 PNG of tiny-shapes objects."""
    img = draw_scene(np.random.default_rng(0), 320, 3)[0][:240]
    path = tmp_path / 'scene.png'
    Image.fromarray(img).save(path)
    return path


def read(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert('RGB')).astype(int)


def changed_fraction(picture, image) -> float:
    """Fraction of pixels that differ by more than 10 in some channel."""
    return float((np.abs(read(picture) - read(image)) > 10).any(-1).mean())


@pytest.mark.parametrize('task', ['det', 'seg', 'cls'])
def test_task_of_tiny_configs(task):
    assert task_of(CONFIGS[task]) == task
    assert task_of(str(CONFIGS[task])) == task


@pytest.mark.parametrize('scope_line', ['', "default_scope = 'mmocr'\n"])
def test_task_of_other_scope(tmp_path, scope_line):
    cfg = tmp_path / 'other.py'
    cfg.write_text(scope_line + "model = dict(type='Foo')\n")
    with pytest.raises(ValueError, match='default_scope'):
        task_of(cfg)


def test_missing_config(tmp_path):
    with pytest.raises(FileNotFoundError, match='config file .*nope.py'):
        task_of(tmp_path / 'nope.py')


def test_list_images(tmp_path, image):
    folder = tmp_path / 'folder'
    folder.mkdir()
    for name in ['b.png', 'a.JPG', 'c.jpeg', 'notes.txt']:
        (folder / name).write_bytes(image.read_bytes())
    (folder / 'sub.png').mkdir()  # a folder, not an image
    assert list_images(folder) == [
        str(folder / n) for n in ['a.JPG', 'b.png', 'c.jpeg']
    ]
    in_folder = [str(folder / n) for n in ['a.JPG', 'b.png', 'c.jpeg']]
    assert list_images([image, str(folder)]) == [str(image)] + in_folder
    assert list_images(str(image)) == [str(image)]


def test_list_images_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='input .*nope.jpg'):
        list_images(tmp_path / 'nope.jpg')
    (tmp_path / 'notes.txt').write_text('no image here')
    with pytest.raises(ValueError, match='holds no image'):
        list_images(tmp_path)
    with pytest.raises(ValueError, match='no input image'):
        list_images([])


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match='checkpoint .*nope.pth'):
        build_inferencer(CONFIGS['cls'], weights=tmp_path / 'nope.pth')


def test_visualize_errors_before_building(tmp_path, image):
    other = tmp_path / 'other' / image.name
    other.parent.mkdir()
    other.write_bytes(image.read_bytes())
    with pytest.raises(ValueError, match='would both be drawn'):
        visualize([image, other], CONFIGS['det'], out_dir=tmp_path / 'out')
    # classification pictures are <stem>.png: a.jpg and a.png collide
    jpg = image.with_suffix('.jpg')
    Image.open(image).convert('RGB').save(jpg)
    with pytest.raises(ValueError, match='would both be drawn'):
        visualize([image, jpg], CONFIGS['cls'], out_dir=tmp_path / 'out')
    with pytest.raises(ValueError, match='topk'):
        visualize(image, CONFIGS['cls'], topk=0)
    assert not (tmp_path / 'out').exists()


@pytest.mark.slow
@pytest.mark.parametrize('task', ['det', 'seg', 'cls'])
def test_visualize_random_weights(task, image, tmp_path):
    """Without weights: one picture of the input's size with something drawn
    on it, predictions in the library's format, the config's class names
    (not mmdet's COCO / mmseg's Cityscapes defaults)."""
    inferencer = build_inferencer(CONFIGS[task])
    assert task_of(inferencer) == task
    expected = SHAPES if task != 'seg' else ('background', ) + SHAPES
    assert tuple(class_names(inferencer)) == expected

    paths, preds = visualize(
        image, inferencer, out_dir=tmp_path / 'out', score_thr=0.0)
    name = 'scene.png'
    assert paths == [str(tmp_path / 'out' / 'vis' / name)]
    assert read(paths[0]).shape == (240, 320, 3)
    assert changed_fraction(paths[0], image) > 0.01
    assert len(preds) == 1
    if task == 'det':
        assert len(preds[0]['bboxes']) == len(preds[0]['scores']) > 0
        assert max(preds[0]['labels']) < len(SHAPES)
    elif task == 'seg':
        assert preds[0].shape == (240, 320)
        assert preds[0].max() <= len(SHAPES)
    else:
        assert preds[0]['pred_scores'].shape == (len(SHAPES), )
        assert preds[0]['pred_class'] in SHAPES


@pytest.mark.slow
@pytest.mark.parametrize('task', ['det', 'seg', 'cls'])
def test_checkpoint_weights_and_class_names(task, image, tmp_path):
    """Weights are loaded (same predictions as the model they were saved
    from) and the checkpoint's dataset_meta names the classes; without
    dataset_meta the config's names are used."""
    torch.manual_seed(0)
    source = build_inferencer(CONFIGS[task])
    names = ['a', 'b', 'c', 'd'] if task != 'seg' else list('xabcd')
    meta = dict(classes=names, palette=[[i, i, i] for i in range(5)])
    named, plain = tmp_path / 'named.pth', tmp_path / 'plain.pth'
    state = source.model.state_dict()
    torch.save(dict(state_dict=state, meta=dict(dataset_meta=meta)), named)
    torch.save(dict(state_dict=state), plain)

    _, before = visualize(image, source, out_dir=tmp_path / 'a', score_thr=0.0)
    loaded = build_inferencer(CONFIGS[task], weights=named)
    assert list(class_names(loaded)) == names
    _, after = visualize(image, loaded, out_dir=tmp_path / 'b', score_thr=0.0)
    if task == 'det':
        np.testing.assert_allclose(
            after[0]['scores'], before[0]['scores'], rtol=1e-4)
        np.testing.assert_allclose(
            after[0]['bboxes'], before[0]['bboxes'], rtol=1e-4, atol=1e-3)
    elif task == 'seg':
        np.testing.assert_array_equal(after[0], before[0])
    else:
        np.testing.assert_allclose(
            after[0]['pred_scores'], before[0]['pred_scores'], rtol=1e-5)
        assert after[0]['pred_class'] == names[after[0]['pred_label']]

    expected = SHAPES if task != 'seg' else ('background', ) + SHAPES
    assert tuple(class_names(build_inferencer(CONFIGS[task],
                                              plain))) == expected


@pytest.mark.slow
def test_score_threshold_and_topk(image, tmp_path):
    """Detection draws nothing above a threshold no score reaches; more
    classes drawn cover more of a classification picture."""
    det = build_inferencer(CONFIGS['det'])
    paths, _ = visualize(image, det, out_dir=tmp_path / 'det', score_thr=1.01)
    np.testing.assert_array_equal(read(paths[0]), read(image))

    cls = build_inferencer(CONFIGS['cls'])
    top1, _ = visualize(image, cls, out_dir=tmp_path / 'top1', topk=1)
    top4, _ = visualize(image, cls, out_dir=tmp_path / 'top4', topk=4)
    assert changed_fraction(top4[0], image) > \
        1.5 * changed_fraction(top1[0], image) > 0


@pytest.mark.slow
def test_visualize_folder(image, tmp_path):
    folder = tmp_path / 'images'
    folder.mkdir()
    for name in ['b.png', 'a.png', 'c.png']:
        (folder / name).write_bytes(image.read_bytes())
    paths, preds = visualize(folder, CONFIGS['seg'], out_dir=tmp_path / 'o')
    assert paths == [
        str(tmp_path / 'o' / 'vis' / n) for n in ['a.png', 'b.png', 'c.png']
    ]
    assert len(preds) == 3
    for path in paths:
        assert read(path).shape == (240, 320, 3)


@pytest.mark.slow
@pytest.mark.parametrize('size,picture', [((64, 64), (224, 224)),
                                          ((100, 50), (448, 224)),
                                          ((300, 250), (300, 250))])
def test_small_classification_pictures_upscaled(tmp_path, size, picture):
    """Class names drawn on a 64 x 64 image would be unreadable."""
    path = tmp_path / 'small.png'
    img = draw_scene(np.random.default_rng(0), max(size), 1)[0]
    Image.fromarray(img[:size[0], :size[1]]).save(path)
    paths, _ = visualize(path, CONFIGS['cls'], out_dir=tmp_path / 'out')
    assert read(paths[0]).shape == picture + (3, )


@pytest.mark.slow
@pytest.mark.parametrize('config', [
    'boat_swin/mask-rcnn_boat-swin-t_fpn_1x_coco.py',
    'boat_cswin/mask-rcnn_boat-cswin-t_fpn_1x_coco.py',
    'boat_swin/upernet_boat-swin-t_8xb2-160k_ade20k-512x512.py'
])
def test_stock_inferencers_on_zoo_configs(config, image, tmp_path):
    """mmdet's DetInferencer and mmseg's MMSegInferencer, as their users
    call them, on the T-size zoo configs: the config's test pipeline on an
    image file, predictions and pictures written."""
    out = tmp_path / 'out'
    if 'mask-rcnn' in config:
        from mmdet.apis import DetInferencer
        inferencer = DetInferencer(
            model=str(CONFIG_ROOT / config), weights=None, device='cpu')
        result = inferencer(str(image), out_dir=str(out), no_save_pred=False)
        pred = result['predictions'][0]
        assert len(pred['bboxes']) == len(pred['scores']) == len(
            pred['labels'])
        saved = json.loads((out / 'preds' / 'scene.json').read_text())
        assert set(saved) >= {'bboxes', 'scores', 'labels'}
    else:
        from mmseg.apis import MMSegInferencer
        inferencer = MMSegInferencer(
            model=str(CONFIG_ROOT / config), weights=None, device='cpu')
        result = inferencer(
            str(image), out_dir=str(out), return_datasamples=False)
        assert result['predictions'].shape == (240, 320)
        assert result['predictions'].max() < 150
    assert (out / 'vis' / 'scene.png').is_file()
