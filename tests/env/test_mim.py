"""A user's project inherits mmboat's configs the OpenMMLab way,
``_base_ = 'mmboat::boat_swin/...py'``, from a config file outside the
repository, with mmboat installed editable (what tools/setup_env.sh does)
or from its source distribution (``pip install --target``, used through
PYTHONPATH). Configs load in fresh interpreters whose cwd is outside the
repository, so nothing of the checkout is importable by accident. MMEngine
resolves ``mmboat::`` itself, from the entry mmboat adds to its package
table, and builds the inherited dicts (scope ``mmboat``) with the
registries of the config's default scope (mmboat/registry.py)."""
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

CONFIG = 'boat_swin/mask-rcnn_boat-swin-t_fpn_1x_coco.py'
MIM = Path(sys.executable).parent / 'mim'

# what a user's script does: import mmboat, load configs; prints, for each
# config after our own, its model and files or the error it raised
LOAD = '''
import json, os, sys
import mmboat
from mmengine.config import Config
ours = Config.fromfile(sys.argv[1]).model.to_dict()
results = []
for path in sys.argv[2:]:
    try:
        cfg = Config.fromfile(path)
    except Exception as e:
        results.append(dict(error=f'{type(e).__name__}: {e}'))
        continue
    results.append(dict(
        mmboat=mmboat.__file__, ours=ours, model=cfg.model.to_dict(),
        files=[line for line in cfg.text.splitlines()
               if line.endswith('.py') and os.path.isfile(line)]))
print(json.dumps(results))
'''

# the user's config: our Mask R-CNN with another drop path rate
CHILD = f'''_base_ = 'mmboat::{CONFIG}'
model = dict(backbone=dict(drop_path_rate=0.1))
'''
MISSING = "_base_ = 'mmboat::boat_swin/no-such-config.py'\n"


def env_with(pythonpath=None):
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    if pythonpath:
        env['PYTHONPATH'] = str(pythonpath)
    return env


def user_project(tmp_path, **configs):
    """``my_project/configs/<name>.py`` for each ``name=text``."""
    folder = tmp_path / 'my_project' / 'configs'
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in configs.items():
        (folder / f'{name}.py').write_text(text)
    return folder


def load(tmp_path, pythonpath=None):
    """Load the user's child and missing configs; their results."""
    folder = user_project(tmp_path, child=CHILD, missing=MISSING)
    command = [
        sys.executable, '-c', LOAD, REPO_ROOT / 'configs' / CONFIG,
        folder / 'child.py', folder / 'missing.py'
    ]
    proc = subprocess.run(
        command,
        cwd=tmp_path,
        env=env_with(pythonpath),
        capture_output=True,
        text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    child, missing = json.loads(proc.stdout.splitlines()[-1])
    return folder, child, missing


def check(tmp_path, package_dir, pythonpath=None):
    """The child resolves to ``package_dir/.mim/configs/CONFIG`` and holds
    our config's model with its own override; a config mmboat does not have
    is named in the error. Returns the resolved base config."""
    folder, child, missing = load(tmp_path, pythonpath)
    assert 'error' not in child, child['error']
    assert Path(child['mmboat']) == package_dir / '__init__.py'
    base = package_dir / '.mim' / 'configs' / CONFIG
    assert str(base) in child['files']
    backbone = child['model']['backbone']
    assert (backbone['type'], backbone['arch']) == ('BOATSwinTransformer',
                                                    'tiny')
    assert backbone['drop_path_rate'] == 0.1
    child['ours']['backbone']['drop_path_rate'] = 0.1
    assert child['model'] == child['ours']

    no_such = package_dir / '.mim' / 'configs' / 'boat_swin' / \
        'no-such-config.py'
    assert missing['error'] == (
        f'FileNotFoundError: file "{no_such}" does not exist')
    return base


@pytest.fixture(scope='module')
def installed_mmboat(tmp_path_factory):
    """A folder holding mmboat installed from its source distribution, as
    pip installs it into site-packages."""
    root = tmp_path_factory.mktemp('mmboat_install')
    src = root / 'src'
    src.mkdir()
    for name in ('setup.py', 'MANIFEST.in', 'README.md', 'model-index.yml'):
        shutil.copy(REPO_ROOT / name, src / name)
    ignore = shutil.ignore_patterns('.mim', '__pycache__', '*.pyc')
    for name in ('requirements', 'mmboat', 'configs', 'tools'):
        shutil.copytree(REPO_ROOT / name, src / name, ignore=ignore)
    subprocess.run([sys.executable, 'setup.py', '-q', 'sdist', '-d', 'dist'],
                   cwd=src,
                   check=True,
                   capture_output=True)
    sdist, = (src / 'dist').glob('mmboat-*.tar.gz')
    with tarfile.open(sdist) as tar:  # the compiled op's source ships
        assert any(
            n.endswith('mmboat/ops/csrc/cluster_order.cpp')
            for n in tar.getnames())
    site = root / 'site'
    pip_install = [
        sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
        '--no-build-isolation', '--disable-pip-version-check'
    ]
    # MMBOAT_WITH_OPS=0: these tests are about the configs and the model
    # index; compiling the op (-O3) would double the fixture's time
    subprocess.run([*pip_install, '--target', site, sdist],
                   check=True,
                   capture_output=True,
                   env=dict(os.environ, MMBOAT_WITH_OPS='0'))
    assert not list((site / 'mmboat').glob('_ext*'))
    return site


def test_editable_install_inherits_live_config(tmp_path):
    base = check(tmp_path, REPO_ROOT / 'mmboat')
    # the editable install links the repository's configs
    assert base.resolve() == REPO_ROOT / 'configs' / CONFIG


def test_installed_package_inherits_its_copy(tmp_path, installed_mmboat):
    base = check(tmp_path, installed_mmboat / 'mmboat', installed_mmboat)
    assert not base.is_symlink()
    assert base.read_text() == (REPO_ROOT / 'configs' / CONFIG).read_text()
    # mim's model index and the shipped checkpoints come along
    package = installed_mmboat / 'mmboat'
    assert (package / '.mim' / 'model-index.yml').is_file()
    shipped = sorted(
        p.relative_to(REPO_ROOT / 'mmboat')
        for p in (REPO_ROOT / 'mmboat' / 'checkpoints').rglob('*.*'))
    assert shipped and all((package / p).is_file() for p in shipped)


def test_checkout_without_install_names_the_missing_mim_folder(tmp_path):
    # mmboat imported from a copy of the package that pip never installed:
    # MMEngine's error names the .mim folder that pip would have made
    ignore = shutil.ignore_patterns('.mim', '__pycache__', '*.pyc')
    shutil.copytree(
        REPO_ROOT / 'mmboat', tmp_path / 'src' / 'mmboat', ignore=ignore)
    folder, child, _ = load(tmp_path, tmp_path / 'src')
    index = tmp_path / 'src' / 'mmboat' / '.mim' / 'model-index.yml'
    assert child == dict(
        error=("FileNotFoundError: [Errno 2] No such file or directory: "
               f"'{index}'"))


def test_inherited_dicts_build_as_when_loaded_by_path(tmp_path):
    """MMEngine gives the typed dicts of a config inherited with
    ``mmboat::`` the scope ``mmboat``; they are built with the registries
    of the scope in use (here mmpretrain's, the config's default scope), as
    the dicts of the config loaded by path are."""
    from mmengine.config import Config
    from mmengine.registry import DATASETS, TRANSFORMS, DefaultScope

    import mmboat  # noqa: F401  (the package table and the mmboat scope)
    tiny = 'tiny/boat-swin-nano_tiny-shapes.py'
    folder = user_project(tmp_path, mine=f"_base_ = 'mmboat::{tiny}'\n")
    inherited = Config.fromfile(folder / 'mine.py')
    by_path = Config.fromfile(REPO_ROOT / 'configs' / tiny)
    assert inherited.default_scope == 'mmpretrain'
    dataset = inherited.train_dataloader.dataset
    assert dataset.type == 'CustomDataset' and dataset._scope_ == 'mmboat'
    assert {t._scope_ for t in inherited.train_pipeline} == {'mmboat'}
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        built = [type(TRANSFORMS.build(t)) for t in inherited.train_pipeline]
        expected = [type(TRANSFORMS.build(t)) for t in by_path.train_pipeline]
        with DATASETS.switch_scope_and_registry('mmboat') as registry:
            dataset = registry.get('CustomDataset')
    assert built == expected and len(built) == 3
    from mmpretrain.registry import DATASETS as MMPRETRAIN_DATASETS
    assert dataset is MMPRETRAIN_DATASETS.get('CustomDataset')


@pytest.mark.slow
def test_user_project_trains_with_mim(tmp_path, installed_mmboat):
    """``mim train mmboat`` runs the installed mmboat's tools/train.py on a
    user's config inheriting a tiny config; the inherited dataset, model
    and evaluator come from mmpretrain as when the config is used by path.
    """
    assert MIM.is_file(), (f'{MIM} not found: install openmim '
                           '(requirements/tests.txt)')
    from mmboat.datasets import make_tiny_datasets
    make_tiny_datasets(
        str(tmp_path / 'data' / 'tiny_shapes'),
        tasks=('cls', ),
        sizes=dict(cls=dict(train=(16, 64), val=(8, 64))))
    folder = user_project(
        tmp_path,
        my_cls='''
_base_ = 'mmboat::tiny/boat-swin-nano_tiny-shapes.py'
train_cfg = dict(max_epochs=1)
''')
    proc = subprocess.run(
        [MIM, 'train', 'mmboat', folder / 'my_cls.py', '--work-dir', 'work'],
        cwd=tmp_path,
        env=env_with(installed_mmboat),
        capture_output=True,
        text=True,
        timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    tool = installed_mmboat / 'mmboat' / '.mim' / 'tools' / 'train.py'
    assert f'Training command is {sys.executable} {tool}' in log
    assert re.search(r'Epoch\(val\) \[1\].*accuracy/top1: ', log)
    assert (tmp_path / 'work' / 'epoch_1.pth').is_file()
    assert 'with scope "mmboat"' not in log
