"""The tiny-shapes writer writes only into missing, empty or its own
folders, removes its own stale files when it rewrites, and tells a complete
dataset from an interrupted one."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmboat.datasets import is_complete, make_tiny_datasets
from mmboat.datasets.tiny_shapes import MANIFEST

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools' / 'misc' / 'make_tiny_datasets.py'
SMALL = dict(
    det=dict(train=(3, 32), val=(2, 32)), cls=dict(train=(4, 16), val=(4, 16)))


def files_under(folder):
    return sorted(
        str(p.relative_to(folder)) for p in folder.rglob('*') if p.is_file())


def users_folder(root):
    """A user's COCO annotations and ImageNet class folder."""
    (root / 'coco' / 'annotations').mkdir(parents=True)
    (root / 'coco' / 'annotations' / 'instances_train.json').write_text('{}')
    (root / 'imagenet' / 'train' / 'n01440764').mkdir(parents=True)
    (root / 'imagenet' / 'train' / 'n01440764' / 'a.JPEG').write_bytes(b'x')
    return files_under(root)


def test_refuses_a_users_folder_and_writes_nothing(tmp_path):
    before = users_folder(tmp_path)
    with pytest.raises(FileExistsError) as error:
        make_tiny_datasets(str(tmp_path), tasks=['seg', 'det'], sizes=SMALL)
    assert f'{tmp_path / "coco"} already holds files that tiny-shapes did ' \
        'not write' in str(error.value)
    # checked before anything is written: not even the ade folder
    assert files_under(tmp_path) == before


def test_rewrites_its_own_folder_without_stale_files(tmp_path):
    make_tiny_datasets(str(tmp_path), tasks=['det', 'cls'], sizes=SMALL)
    assert is_complete(str(tmp_path), 'det')
    first = files_under(tmp_path / 'coco')
    assert 'images/train/000002.jpg' in first and MANIFEST in first
    smaller = dict(det=dict(train=(1, 32), val=(1, 32)))
    make_tiny_datasets(str(tmp_path), tasks=['det'], sizes=smaller)
    assert files_under(tmp_path / 'coco') == sorted([
        MANIFEST, 'annotations/instances_train.json',
        'annotations/instances_val.json', 'images/train/000000.jpg',
        'images/val/000000.jpg'
    ])
    # a file the user put into the generator's folder stays
    (tmp_path / 'imagenet' / 'notes.txt').write_text('mine')
    make_tiny_datasets(str(tmp_path), tasks=['cls'], sizes=SMALL)
    assert (tmp_path / 'imagenet' / 'notes.txt').read_text() == 'mine'


def test_interrupted_run_is_not_complete(tmp_path):
    make_tiny_datasets(str(tmp_path), tasks=['det'], sizes=SMALL)
    manifest = tmp_path / 'coco' / MANIFEST
    state = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(dict(state, complete=False)))
    assert not is_complete(str(tmp_path), 'det')
    assert not is_complete(str(tmp_path), 'seg')
    make_tiny_datasets(str(tmp_path), tasks=['det'], sizes=SMALL)
    assert is_complete(str(tmp_path), 'det')


@pytest.mark.parametrize('seed', [-1, 1.5, True])
def test_bad_seed(tmp_path, seed):
    with pytest.raises(ValueError, match='non-negative integer'):
        make_tiny_datasets(str(tmp_path), seed=seed, sizes=SMALL)


def run_tool(*args, cwd):
    return subprocess.run(
        [sys.executable, str(TOOL), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300)


@pytest.mark.parametrize('case', ['users-folder', 'file', 'seed'])
def test_tool_refuses_with_a_message_not_a_traceback(tmp_path, case):
    out = tmp_path / 'out'
    if case == 'users-folder':
        users_folder(out)
        args, expected = ['--out-dir', out], 'did not write'
    elif case == 'file':
        out.write_text('x')
        args, expected = ['--out-dir', out], 'is a file'
    else:
        args, expected = ['--out-dir', out, '--seed', '-1'], \
            "'-1' is not a non-negative integer"
    proc = run_tool(*args, '--tasks', 'det', cwd=tmp_path)
    assert proc.returncode == 2
    assert expected in proc.stderr and 'Traceback' not in proc.stderr
