"""The model index, OpenMMLab's way: ``configs/boat_{swin,cswin}/
metafile.yml``, imported by the root ``model-index.yml``, which the
installed package carries in ``mmboat/.mim/`` for ``mim search mmboat``.

Every zoo config has exactly one entry; parameters and FLOPs are those of
the README's model-zoo table; accuracies, where an entry has any, are
numbers in a plausible range for their task."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO_ROOT

FAMILIES = ('boat_swin', 'boat_cswin')
METAFILES = [f'configs/{fam}/metafile.yml' for fam in FAMILIES]
MIM = Path(sys.executable).parent / 'mim'

# what each kind of zoo config is trained and evaluated on: the config name's
# suffix, its training data, and the tasks / datasets its results may name
KINDS = {
    '_in1k': ('ImageNet-1k', {'Image Classification'}, 'ImageNet-1k'),
    '_coco': ('COCO', {'Object Detection', 'Instance Segmentation'}, 'COCO'),
    '_ade20k-512x512': ('ADE20K', {'Semantic Segmentation'}, 'ADE20K'),
}
# plausible values of the published models' metrics (percent)
METRIC_RANGES = {
    'Top 1 Accuracy': (70.0, 90.0),
    'Top 5 Accuracy': (90.0, 100.0),
    'box AP': (30.0, 65.0),
    'mask AP': (25.0, 60.0),
    'mIoU': (35.0, 65.0),
}


def read_yaml(relpath):
    with open(REPO_ROOT / relpath) as f:
        return yaml.safe_load(f)


def all_models():
    return [m for path in METAFILES for m in read_yaml(path)['Models']]


def all_collections():
    return [
        c for path in METAFILES
        for c in read_yaml(path).get('Collections', [])
    ]


def zoo_configs():
    return sorted(
        p.relative_to(REPO_ROOT).as_posix() for fam in FAMILIES
        for p in (REPO_ROOT / 'configs' / fam).glob('*.py'))


def kind_of(name):
    kinds = [kind for suffix, kind in KINDS.items() if name.endswith(suffix)]
    assert len(kinds) == 1, f'{name}: not a zoo config name'
    return kinds[0]


def readme_zoo_table():
    """``{config name: (params in M, GFLOPs)}`` from the model-zoo table of
    the root README, as the strings written there."""
    row = re.compile(r'^\| \[([^\]]+)\]\((configs/[^)]+\.py)\) \| [^|]+ \| '
                     r'([\d.]+) \| ([\d.]+) \(\d+ x \d+\) \|')
    table = {}
    for line in (REPO_ROOT / 'README.md').read_text().splitlines():
        m = row.match(line)
        if m:
            name, path, params, gflops = m.groups()
            assert path == f'configs/{path.split("/")[1]}/{name}.py', line
            table[name] = (params, gflops)
    return table


def scaled(decimal, scale):
    """The integer ``decimal * scale`` for a decimal string, exactly."""
    whole, _, frac = decimal.partition('.')
    assert scale % 10**len(frac) == 0
    return int(whole + frac) * (scale // 10**len(frac))


def test_root_model_index_imports_both_metafiles():
    assert read_yaml('model-index.yml') == {'Import': METAFILES}


def test_every_config_has_exactly_one_model():
    configs = zoo_configs()
    assert len(configs) == 24, configs
    by_config = {}
    for model in all_models():
        by_config.setdefault(model['Config'], []).append(model['Name'])
    for config in configs:
        names = by_config.get(config, [])
        assert len(names) == 1, f'{config}: models {names}'
    for config, names in by_config.items():
        assert (REPO_ROOT / config).is_file(), f'{names}: no config {config}'
    assert sorted(by_config) == configs


def test_names_are_config_names_and_unique():
    names = [m['Name'] for m in all_models()]
    assert len(names) == len(set(names))
    for model in all_models():
        config = Path(model['Config'])
        assert model['Name'] == config.stem
        fam = config.parent.name
        assert f'configs/{fam}/metafile.yml' in METAFILES
        assert model in read_yaml(f'configs/{fam}/metafile.yml')['Models']


def test_collections():
    collections = {c['Name']: c for c in all_collections()}
    assert len(collections) == len(all_collections())
    for model in all_models():
        assert model['In Collection'] in collections, model['Name']
    for collection in collections.values():
        assert (REPO_ROOT / collection['README']).is_file()
        assert collection['Paper']['URL'] == ('https://arxiv.org/abs/'
                                              '2201.13027')
        assert 'BOAT' in collection['Paper']['Title']
        assert (REPO_ROOT / collection['Code']['URL']).is_file()


def test_results_are_plausible_numbers():
    for model in all_models():
        data, tasks, dataset = kind_of(model['Name'])
        assert model['Metadata']['Training Data'] == data
        for result in model.get('Results') or []:
            where = f'{model["Name"]}: {result}'
            assert result['Task'] in tasks, where
            assert result['Dataset'] == dataset, where
            assert result['Metrics'], where
            for metric, value in result['Metrics'].items():
                assert metric in METRIC_RANGES, where
                assert isinstance(value, (int, float)), where
                assert not isinstance(value, bool), where
                low, high = METRIC_RANGES[metric]
                assert low <= value <= high, where


def test_params_and_flops_are_the_readme_table():
    table = readme_zoo_table()
    assert sorted(table) == sorted(m['Name'] for m in all_models())
    for model in all_models():
        params, gflops = table[model['Name']]
        meta = model['Metadata']
        assert meta['Parameters'] == scaled(params, 10**6), model['Name']
        assert meta['FLOPs'] == scaled(gflops, 10**9), model['Name']


def run_mim(*args):
    """``mim search mmboat ARGS`` with the venv's ``mim``. MIM 0.3.9 finds
    a package's folder from its distribution's location; for an editable
    install that is ``site-packages``, which has no ``mmboat`` folder, so the
    repository goes first on the path, as the config READMEs say: the
    distribution found is then the checkout's ``mmboat.egg-info`` (written
    by ``tools/setup_env.sh``) and the folder ``mmboat/``."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get('PYTHONPATH')) if p)
    proc = subprocess.run([str(MIM), 'search', 'mmboat', *args],
                          cwd=REPO_ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def listed(stdout):
    return re.findall(r'^config id: (\S+)$', stdout, re.MULTILINE)


def test_installed_package_holds_the_model_index():
    index = REPO_ROOT / 'mmboat' / '.mim' / 'model-index.yml'
    assert index.is_file(), (
        f'{index} is missing: reinstall mmboat (pip install --no-deps '
        '--no-build-isolation -e .) so that its .mim folder links it')
    assert index.resolve() == REPO_ROOT / 'model-index.yml'


def test_mim_search_lists_every_model():
    assert sorted(listed(run_mim())) == sorted(m['Name'] for m in all_models())


def test_mim_search_fields_and_filters():
    out = run_mim('--model', 'boat-cswin', '--dataset', 'coco', '--field',
                  'config', 'parameters', 'flops')
    expected = {
        m['Name']: m
        for m in all_models() if m['In Collection'] == 'BOAT-CSWin'
        and m['Metadata']['Training Data'] == 'COCO'
    }
    assert sorted(listed(out)) == sorted(expected)
    for block in out.split('config id: ')[1:]:
        name, *lines = block.strip().splitlines()
        fields = dict(
            line.split(None, 1) for line in lines if not line.startswith('-'))
        assert set(fields) == {'config', 'parameters', 'flops'}
        meta = expected[name]['Metadata']
        assert fields['config'] == expected[name]['Config']
        assert int(fields['parameters']) == meta['Parameters']
        assert int(fields['flops']) == meta['FLOPs']


def build_py(src, build_lib):
    command = [
        sys.executable, 'setup.py', '-q', 'build_py', '--build-lib',
        str(build_lib)
    ]
    proc = subprocess.run(
        command, cwd=src, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_built_package_copies_the_model_index(tmp_path):
    """A regular install (``build_py``) copies the model index as a file
    next to the configs it imports, and every model is read from it with
    the loader MIM uses."""
    from modelindex.load_model_index import load

    mim_dir = tmp_path / 'mmboat' / '.mim'
    build_py(REPO_ROOT, tmp_path)
    index = mim_dir / 'model-index.yml'
    assert index.is_file() and not index.is_symlink()
    assert index.read_text() == (REPO_ROOT / 'model-index.yml').read_text()
    for path in METAFILES:
        assert (mim_dir / path).read_text() == (REPO_ROOT / path).read_text()
    names = [model.name for model in load(str(index)).models]
    assert sorted(names) == sorted(m['Name'] for m in all_models())


def test_source_tree_without_model_index_still_builds(tmp_path):
    """A source distribution whose MANIFEST.in leaves the model index out
    still installs, with configs and tools, and says what it left out."""
    src = tmp_path / 'src'
    src.mkdir()
    for name in ('setup.py', 'README.md'):
        shutil.copy(REPO_ROOT / name, src / name)
    ignore = shutil.ignore_patterns('.mim', '__pycache__', '*.pyc')
    for name in ('requirements', 'mmboat', 'configs', 'tools'):
        shutil.copytree(REPO_ROOT / name, src / name, ignore=ignore)
    proc = build_py(src, tmp_path / 'build')
    mim_dir = tmp_path / 'build' / 'mmboat' / '.mim'
    assert sorted(p.name for p in mim_dir.iterdir()) == ['configs', 'tools']
    assert 'model-index.yml not found' in proc.stderr


@pytest.mark.parametrize('fam', FAMILIES)
def test_readme_links_every_config(fam):
    readme = (REPO_ROOT / 'configs' / fam / 'README.md').read_text()
    for config in zoo_configs():
        if config.startswith(f'configs/{fam}/'):
            assert f'](./{Path(config).name})' in readme, config
    assert '@inproceedings{Yu_2022_BMVC' in readme
