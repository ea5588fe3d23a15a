"""The model index, OpenMMLab's way: ``configs/boat_{swin,cswin}/
metafile.yml``, imported by the root ``model-index.yml``, which the
installed package carries in ``mmboat/.mim/`` for ``mim search mmboat``.

Every zoo config has exactly one entry; parameters and FLOPs are those of
the model-zoo tables (docs/benchmarks.md, the config READMEs, the root
README's ImageNet table); accuracies, where an entry has any, are numbers
in a plausible range for their task, and the config READMEs and the root
README give the same numbers (n/a where the metafile has none)."""
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


def markdown_tables(text):
    """Every table of a markdown text, as a list of ``{header: cell}``
    rows (cells stripped)."""
    tables, lines = [], text.splitlines()

    def cells(line):
        return [c.strip() for c in line.strip().strip('|').split('|')]

    k = 0
    while k + 1 < len(lines):
        sep = lines[k + 1].strip()
        if lines[k].startswith('|') and re.fullmatch(r'\|[\s:|-]+\|', sep):
            header, rows, k = cells(lines[k]), [], k + 2
            while k < len(lines) and lines[k].startswith('|'):
                rows.append(dict(zip(header, cells(lines[k]))))
                k += 1
            tables.append(rows)
        else:
            k += 1
    return tables


def benchmarks_zoo_table():
    """``{config name: (params in M, GFLOPs)}`` from the model-zoo table of
    docs/benchmarks.md (the output of tools/analysis_tools/model_zoo.py),
    as the strings written there."""
    row = re.compile(r'^\| \[([^\]]+)\]\(\.\./(configs/[^)]+\.py)\) \| '
                     r'[^|]+ \| ([\d.]+) \| ([\d.]+) \(\d+ x \d+\) \|')
    table = {}
    text = (REPO_ROOT / 'docs' / 'benchmarks.md').read_text()
    for line in text.splitlines():
        m = row.match(line)
        if m:
            name, path, params, gflops = m.groups()
            assert path == f'configs/{path.split("/")[1]}/{name}.py', line
            table[name] = (params, gflops)
    return table


# the accuracy columns of the config READMEs and the metric of each
README_METRICS = {
    'Top-1 (%)': 'Top 1 Accuracy',
    'box AP': 'box AP',
    'mask AP': 'mask AP',
    'mIoU': 'mIoU',
}


def config_readme_rows():
    """``{config name: row}`` of the result tables of both config READMEs:
    each row links its config as ``[config](./NAME.py)``."""
    rows = {}
    for fam in FAMILIES:
        text = (REPO_ROOT / 'configs' / fam / 'README.md').read_text()
        for table in markdown_tables(text):
            for row in table:
                m = re.fullmatch(r'\[config\]\(\./([^)]+)\.py\)',
                                 row.get('Config', ''))
                if m:
                    assert m.group(1) not in rows, m.group(1)
                    rows[m.group(1)] = row
    return rows


def root_readme_rows():
    """``{ImageNet config name: row}`` of the root README's model-zoo table
    (one row per model, e.g. ``BOAT-Swin-T`` for
    ``boat-swin-t_16xb64_in1k``)."""
    rows = {}
    text = (REPO_ROOT / 'README.md').read_text()
    for table in markdown_tables(text):
        for row in table:
            m = re.fullmatch(r'BOAT-(Swin|CSWin)-([TSB])',
                             row.get('model', ''))
            if m:
                fam, size = m.group(1).lower(), m.group(2).lower()
                rows[f'boat-{fam}-{size}_16xb64_in1k'] = row
    return rows


def metrics_of(model):
    """``{metric: value}`` of a metafile entry's results."""
    return {
        metric: value
        for result in model.get('Results') or []
        for metric, value in result['Metrics'].items()
    }


def assert_accuracy_cell(cell, value, where):
    """A table cell gives the metafile's value, or n/a when it has none."""
    if value is None:
        assert cell == 'n/a', f'{where}: {cell!r}, the metafile has none'
    else:
        assert cell != 'n/a' and float(cell) == value, \
            f'{where}: {cell!r}, the metafile has {value}'


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


def test_params_and_flops_are_the_benchmarks_table():
    table = benchmarks_zoo_table()
    assert sorted(table) == sorted(m['Name'] for m in all_models())
    for model in all_models():
        params, gflops = table[model['Name']]
        meta = model['Metadata']
        assert meta['Parameters'] == scaled(params, 10**6), model['Name']
        assert meta['FLOPs'] == scaled(gflops, 10**9), model['Name']


def test_config_readmes_give_the_metafile_numbers():
    """Params, FLOPs and accuracies of every config README row are its
    metafile entry's; every metric of an entry has its column."""
    rows = config_readme_rows()
    assert sorted(rows) == sorted(m['Name'] for m in all_models())
    for model in all_models():
        name, row, meta = model['Name'], rows[model['Name']], model['Metadata']
        assert scaled(row['Params (M)'], 10**6) == meta['Parameters'], name
        assert scaled(row['FLOPs (G)'], 10**9) == meta['FLOPs'], name
        metrics = metrics_of(model)
        columns = [c for c in README_METRICS if c in row]
        assert columns, f'{name}: no accuracy column'
        assert set(metrics) <= {README_METRICS[c] for c in columns}, name
        for column in columns:
            assert_accuracy_cell(row[column],
                                 metrics.get(README_METRICS[column]),
                                 f'{name}, {column}')


def test_root_readme_zoo_table_gives_the_metafile_numbers():
    """The root README's table: one row per ImageNet model, with its params,
    FLOPs and top-1 as in the metafile (n/a without a result)."""
    rows = root_readme_rows()
    in1k = [m for m in all_models() if m['Name'].endswith('_in1k')]
    assert sorted(rows) == sorted(m['Name'] for m in in1k)
    for model in in1k:
        name, row, meta = model['Name'], rows[model['Name']], model['Metadata']
        assert scaled(row['params (M)'], 10**6) == meta['Parameters'], name
        assert scaled(row['FLOPs (G)'], 10**9) == meta['FLOPs'], name
        assert_accuracy_cell(row['top-1 (%)'],
                             metrics_of(model).get('Top 1 Accuracy'), name)
        fam = name.split('-')[1]
        assert f'(configs/boat_{fam}/README.md)' in row['configs'], name


def test_accuracies_name_their_source():
    """Where a metafile has results, the config README names the table of
    the BOAT paper they come from."""
    for fam in FAMILIES:
        models = read_yaml(f'configs/{fam}/metafile.yml')['Models']
        if any(metrics_of(m) for m in models):
            readme = (REPO_ROOT / 'configs' / fam / 'README.md').read_text()
            assert re.search(r'BOAT paper, Table \d+', readme), fam


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
