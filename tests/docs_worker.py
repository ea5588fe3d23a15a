"""What ``tests/test_docs.py`` runs in its worker process: a separate
interpreter that imports mmboat once and then runs the Python snippets,
loads the config snippets, answers ``--help`` for the tools and writes
stand-in checkpoints, so that the test process itself keeps no state of
them (default scopes, registries, timm models) and the imports are paid
once. Every function takes and returns plain data."""
import contextlib
import importlib
import io
import os
import runpy
import sys
import traceback

LIBRARY_SCOPES = ('mmdet', 'mmseg', 'mmpretrain')


def init_worker():
    """Import what every job needs (minutes of imports paid once)."""
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    os.environ['PYTHONDONTWRITEBYTECODE'] = '1'
    sys.dont_write_bytecode = True
    import matplotlib
    matplotlib.use('Agg')
    import torch
    torch.set_num_threads(1)
    import mmboat  # noqa: F401


@contextlib.contextmanager
def _in_dir(path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _captured(fn, *args):
    """``fn(*args)`` with stdout and stderr captured: ``(ok, text)``;
    ``ok`` is False with the traceback in ``text`` when it raised."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            fn(*args)
    except SystemExit as e:
        if e.code not in (0, None):
            return False, f'{out.getvalue()}\nSystemExit({e.code!r})'
    except BaseException:  # noqa: B902  (reported to the test)
        return False, out.getvalue() + '\n' + traceback.format_exc()
    return True, out.getvalue()


def make_data(root):
    """The tiny-shapes data of the docs' commands (default sizes, seed 0)."""
    from mmboat.datasets import make_tiny_datasets

    return _captured(make_tiny_datasets, root)


def run_python(code, filename, cwd):
    """Run a Python snippet in a fresh namespace from ``cwd``."""

    def run():
        namespace = {'__name__': '__doc_snippet__'}
        exec(compile(code, filename, 'exec'), namespace)

    with _in_dir(cwd):
        return _captured(run)


def run_script(script, args, cwd):
    """Run a Python script as ``__main__`` with ``args``, from ``cwd``, as
    ``python SCRIPT ARGS`` would (in this interpreter)."""
    argv = sys.argv

    def run():
        sys.argv = [script, *args]
        runpy.run_path(script, run_name='__main__')

    try:
        with _in_dir(cwd):
            return _captured(run)
    finally:
        sys.argv = argv


_HELP = {}


def script_help(script, cwd):
    """The ``--help`` text of a Python script, run as ``__main__``:
    ``(ok, text)``; cached per script."""
    if script not in _HELP:
        argv = sys.argv

        def run():
            sys.argv = [script, '--help']
            runpy.run_path(script, run_name='__main__')

        try:
            with _in_dir(cwd):
                _HELP[script] = _captured(run)
        finally:
            sys.argv = argv
    return _HELP[script]


def parse_tool_args(script, args, cwd):
    """Parse ``args`` with the ``parse_args`` of a tool script (not run):
    ``(ok, text)`` with ``vars`` of the namespace as text."""
    old_rank = os.environ.get('LOCAL_RANK')

    def run():
        tool = runpy.run_path(script, run_name='__doc_dry_run__')
        namespace = tool['parse_args'](list(args))
        print(repr(sorted(vars(namespace).items())))

    try:
        with _in_dir(cwd):
            return _captured(run)
    finally:
        if old_rank is None:
            os.environ.pop('LOCAL_RANK', None)
        else:
            os.environ['LOCAL_RANK'] = old_rank


def _registries(scope):
    """The registries of a library scope (its modules registered)."""
    from mmengine import registry as root
    if scope is None:
        return root
    importlib.import_module(f'{scope}.utils').register_all_modules(
        init_default_scope=False)
    return importlib.import_module(f'{scope}.registry')


def _typed(node, registry_name, found):
    """Collect ``(registry name, type)`` of the typed dicts under ``node``."""
    if isinstance(node, dict):
        if isinstance(node.get('type'), str):
            found.append((registry_name, node['type']))
    elif isinstance(node, (list, tuple)):
        for item in node:
            _typed(item, registry_name, found)


def _types_to_check(cfg):
    """``(registry, type)`` of the hooks, loops, datasets, samplers and
    pipelines of a config (its model is built instead)."""
    found = []
    for hook in (cfg.get('default_hooks') or {}).values():
        _typed(hook, 'HOOKS', found)
    _typed(cfg.get('custom_hooks') or [], 'HOOKS', found)
    for key in ('train_cfg', 'val_cfg', 'test_cfg'):
        _typed(cfg.get(key), 'LOOPS', found)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key) or {}
        _typed(loader.get('sampler'), 'DATA_SAMPLERS', found)
        dataset = loader.get('dataset') or {}
        _typed(dataset, 'DATASETS', found)
        _typed(dataset.get('pipeline') or [], 'TRANSFORMS', found)
    return found


def _registered(registry_name, type_name, scope):
    """Whether ``type_name`` is found in that registry of ``scope`` or of
    any library scope (fragments name no scope)."""
    from mmengine.registry import DefaultScope
    for where in (scope, None, *LIBRARY_SCOPES):
        registry = getattr(_registries(where), registry_name)
        with DefaultScope.overwrite_default_scope(where):
            try:
                if registry.get(type_name) is not None:
                    return True
            except KeyError:
                pass
    return False


def build_model(cfg):
    """The model of a loaded config, built in its library's scope (no
    weights are loaded)."""
    from mmengine.registry import DefaultScope
    scope = cfg.get('default_scope')
    models = _registries(scope).MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return models.build(cfg.model)


def check_config(path, cwd):
    """Load a config file after ``import mmboat``, build its model and
    check that its hooks, loops, datasets, samplers and transforms are
    registered."""

    def run():
        from mmengine.config import Config
        cfg = Config.fromfile(path)
        scope = cfg.get('default_scope')
        if 'model' in cfg:
            model = build_model(cfg)
            print(f'built {type(model).__name__} with '
                  f'{type(getattr(model, "backbone", model)).__name__}')
        for registry_name, type_name in _types_to_check(cfg):
            assert _registered(registry_name, type_name, scope), \
                f'{type_name} is in no {registry_name} registry'
            print(f'{registry_name}: {type_name}')

    with _in_dir(cwd):
        return _captured(run)


def build_fails(path, cwd):
    """``(raised, message)``: whether building the model of a config
    file raises, and the error."""
    from mmengine.config import Config
    with _in_dir(cwd):
        try:
            build_model(Config.fromfile(path))
        except Exception as e:  # noqa: B902  (reported to the test)
            return True, f'{type(e).__name__}: {e}'
    return False, ''


def write_stand_in(config, path, with_training_state):
    """Write a checkpoint of ``config``'s model with its random initial
    weights to ``path``: a converter's output (``meta``, ``state_dict``)
    or, ``with_training_state``, what an MMEngine run saves (also the
    dataset meta and a message hub)."""

    def run():
        import numpy as np
        import torch
        from mmengine.config import Config
        from mmengine.logging import HistoryBuffer
        cfg = Config.fromfile(config)
        model = build_model(cfg)
        meta = dict(doc_test='random weights, written by tests/test_docs.py')
        checkpoint = dict(meta=meta, state_dict=model.state_dict())
        if with_training_state:
            dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
            classes = (dataset.get('metainfo') or {}).get('classes')
            if classes is not None:
                meta['dataset_meta'] = dict(classes=tuple(classes))
            meta.update(epoch=1, iter=1)
            checkpoint['message_hub'] = dict(
                log_scalars={'train/loss': HistoryBuffer([1.0, 0.5], [1, 1])},
                runtime_info=dict(epoch=1, iter=1),
                resumed_keys=dict(epoch=True, iter=True))
            checkpoint['optimizer'] = dict(state={}, param_groups=[])
            checkpoint['np_state'] = np.zeros(2)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.save(checkpoint, path)

    return _captured(run)
