"""How mmboat's modules depend on each other, read statically from their
source (``ast``), every import counted, also those deferred inside
functions: no import circle; ``mmboat.utils`` imports nothing else of
mmboat; the layers of checkpoint handling depend only downward; each
family's facts are written in :mod:`mmboat.families` only. And
``import mmboat`` replaces nothing of MMEngine and imports no timm."""
import ast
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from tests.helpers import REPO_ROOT

PACKAGE = REPO_ROOT / 'mmboat'

# --------------------------------------------------------------- the walker


def module_files(package: Path) -> Dict[str, Path]:
    """Dotted name -> file of every module of ``package`` (a folder)."""
    modules = {}
    for path in sorted(package.rglob('*.py')):
        parts = list(path.relative_to(package.parent).with_suffix('').parts)
        if parts[-1] == '__init__':
            parts.pop()
        modules['.'.join(parts)] = path
    return modules


def _ancestors(name: str) -> List[str]:
    """``a.b.c`` -> ``['a', 'a.b']``."""
    parts = name.split('.')
    return ['.'.join(parts[:i]) for i in range(1, len(parts))]


def _imports(node: ast.AST, importer: str, is_package: bool, modules):
    """(module named, whether the statement needs only that the module
    has been imported, not anything of its namespace) for an import
    statement or an ``import_module`` / ``__import__`` call with a
    constant name. ``from X import n`` names ``X.n`` when that is one of
    ``modules``, else ``X``."""
    if isinstance(node, ast.Import):
        return [(alias.name, True) for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        module = node.module or ''
        if node.level:
            package = importer.split('.')
            if not is_package:
                package.pop()
            package = package[:len(package) - node.level + 1]
            module = '.'.join(package + ([module] if module else []))
        named = [f'{module}.{alias.name}' for alias in node.names]
        return [(name if name in modules else module, False) for name in named]
    if isinstance(node, ast.Call) and node.args and isinstance(
            node.args[0], ast.Constant) and isinstance(node.args[0].value,
                                                       str):
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(
            func, 'attr', None)
        if name in ('import_module', '__import__'):
            return [(node.args[0].value, True)]
    return []


def import_graph(package: Path) -> Dict[str, Dict[str, int]]:
    """importer -> {imported module: line} over the modules of ``package``.

    An import of module ``T`` makes Python run ``T`` and every package
    above it: each of them is an edge, except the importer's own
    ancestors, which Python imported before the importer (a plain
    ``import <ancestor>`` runs nothing; ``from <ancestor> import name``
    needs the ancestor's namespace and is an edge, unless ``name`` is a
    module).
    """
    modules = module_files(package)
    graph = {}
    for importer, path in modules.items():
        is_package = path.name == '__init__.py'
        own_ancestors = set(_ancestors(importer))
        edges = graph.setdefault(importer, {})
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for target, binds_only in _imports(node, importer, is_package,
                                               modules):
                if target not in modules:
                    continue
                run = [a for a in _ancestors(target) if a not in own_ancestors]
                if not (binds_only and target in own_ancestors):
                    run.append(target)
                for module in run:
                    if module != importer:
                        edges.setdefault(module, node.lineno)
    return graph


def find_circle(graph: Dict[str, Dict[str, int]]) -> Optional[List[str]]:
    """A circle of imports ``[a, b, ..., a]``, or None."""
    state = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def visit(module):
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, {})):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        state[module] = 2
        path.pop()
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module)
            if found:
                return found
    return None


def describe(graph, circle) -> str:
    return ' -> '.join(
        f'{a} (line {graph[a][b]})' for a, b in zip(circle, circle[1:])) + \
        f' -> {circle[-1]}'


# ------------------------------------------- the walker on synthetic modules


def make_package(root: Path, **files: str) -> Path:
    """``root/pkg`` with ``files`` (dotted name under pkg -> source)."""
    for name, source in files.items():
        path = root.joinpath('pkg', *name.split('.'))
        if name.endswith('__init__'):
            path = path.parent / '__init__.py'
        else:
            path = path.with_suffix('.py')
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root / 'pkg'


def test_walker_finds_a_circle_through_a_deferred_import(tmp_path):
    pkg = make_package(
        tmp_path,
        __init__='',
        a='from pkg import b\n',
        b='def f():\n    from .a import g\n    return g\n')
    graph = import_graph(pkg)
    assert graph['pkg.a'] == {'pkg.b': 1} and graph['pkg.b'] == {'pkg.a': 2}
    assert find_circle(graph) == ['pkg.a', 'pkg.b', 'pkg.a']
    (pkg / 'b.py').write_text('def f():\n    return 1\n')
    assert find_circle(import_graph(pkg)) is None


def test_walker_counts_the_packages_an_import_runs(tmp_path):
    # pkg.a -> pkg.sub.c runs pkg/sub/__init__.py, which imports pkg.a
    pkg = make_package(
        tmp_path,
        __init__='',
        a='import importlib\nimportlib.import_module("pkg.sub.c")\n',
        **{
            'sub.__init__': 'from ..a import x\n',
            'sub.c': ''
        })
    graph = import_graph(pkg)
    assert set(graph['pkg.a']) == {'pkg.sub', 'pkg.sub.c'}
    assert find_circle(graph) == ['pkg.a', 'pkg.sub', 'pkg.a']


@pytest.mark.parametrize(
    'source, circle', [('import pkg\n', False),
                       ('from pkg import VERSION\n', True)],
    ids=['import-package', 'from-package-import-name'])
def test_walker_on_imports_of_the_own_package(tmp_path, source, circle):
    """A module's packages are imported before it runs: ``import pkg`` in
    pkg.a runs nothing, ``from pkg import VERSION`` needs pkg's
    namespace."""
    pkg = make_package(
        tmp_path, __init__='from . import a\nVERSION = 1\n', a=source)
    found = find_circle(import_graph(pkg))
    assert (found == ['pkg', 'pkg.a', 'pkg']) if circle else found is None


# ------------------------------------------------------------ mmboat itself


@pytest.fixture(scope='module')
def graph():
    return import_graph(PACKAGE)


def test_no_import_circle(graph):
    circle = find_circle(graph)
    assert circle is None, f'import circle: {describe(graph, circle)}'


def test_utils_import_nothing_of_mmboat(graph):
    upward = {
        (m, t): line
        for m, targets in graph.items() if m.startswith('mmboat.utils')
        for t, line in targets.items() if not t.startswith('mmboat.utils')
    }
    assert not upward, upward


#: the layers of checkpoint handling, lowest first: a module imports only
#: modules of its own layer or of the layers below
LAYERS = [
    ('mmboat.version', 'mmboat.registry'),
    ('mmboat.utils', ),
    ('mmboat.families', ),
    ('mmboat.converters', ),
    ('mmboat.models', ),
    ('mmboat.timm', ),
]


def layer_of(module: str) -> Optional[int]:
    return next(
        (i for i, names in enumerate(LAYERS)
         for name in names if module == name or module.startswith(name + '.')),
        None)


def test_layers_depend_only_downward(graph):
    upward = [
        f'{m} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)}) on '
        f'line {line}' for m, targets in graph.items()
        for t, line in targets.items() if layer_of(m) is not None
        and layer_of(t) is not None and layer_of(t) > layer_of(m)
    ]
    assert not upward, '\n'.join(upward)
    # where format detection and backbone loading live
    assert 'mmboat.converters.core' in graph['mmboat.models.backbones.loading']
    assert 'mmboat.models.backbones.loading' in graph[
        'mmboat.models.backbones.base']


def string_constants(path: Path) -> List[str]:
    """The string literals of a module's code (docstrings and the parts of
    f-strings left out)."""
    tree = ast.parse(path.read_text())
    left_out = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr)
    } | {
        id(part)
        for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)
        for part in node.values
    }
    return [
        node.value for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in left_out
    ]


def test_family_facts_are_written_once():
    """The converter scripts, published files and official key prefixes of
    the families are literals of mmboat/families.py only, among the
    modules of mmboat and tools/analysis_tools/model_zoo.py."""
    from mmboat.families import FAMILIES
    facts = set()
    for family in FAMILIES.values():
        facts |= {family.converter, *family.official_prefixes}
        facts |= {release.file for release in family.published.values()}
        facts |= {release.model for release in family.published.values()}
    files = list(module_files(PACKAGE).values()) + [
        REPO_ROOT / 'tools' / 'analysis_tools' / 'model_zoo.py'
    ]
    where = {(fact, str(path.relative_to(REPO_ROOT)))
             for path in files
             for fact in facts if fact in string_constants(path)}
    assert {path for _, path in where} == {'mmboat/families.py'}, where


# ------------------------------------------------------------ import mmboat


def test_import_mmboat_replaces_nothing_of_mmengine():
    """Stock MMEngine after `import mmboat` (a fresh interpreter): its
    Runner's load_checkpoint, its local-file checkpoint loader and its
    config's resolution of ``pkg::`` paths are its own, and neither timm
    nor the models of mmdet, mmseg or mmpretrain are imported."""
    script = (
        'import sys\n'
        'import mmengine.runner.checkpoint as c\n'
        'from mmengine.config import Config\n'
        'from mmengine.runner import Runner\n'
        'def mmengine():\n'
        '    return (Runner.load_checkpoint, c.CheckpointLoader._schemes[""],'
        ' Config._get_cfg_path, Config.__dict__["_get_cfg_path"])\n'
        'before = mmengine()\n'
        'import mmboat\n'
        'after = mmengine()\n'
        'assert all(a is b for a, b in zip(before, after)), (before, after)\n'
        'heavy = {"timm", "mmdet.models", "mmseg.models",'
        ' "mmpretrain.models"}\n'
        'assert not heavy & set(sys.modules), heavy & set(sys.modules)\n'
        'print("ok")\n')
    proc = subprocess.run([sys.executable, '-c', script],
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == 'ok', \
        proc.stderr[-2000:]
