"""Checks of a config that the tools run before any work: ``--cfg-options``
keys that are misspelt, and datasets that are not on disk.

Both end the tools with a message that names the problem and the fix
(:func:`mmboat.utils.runner_cli.exit_on_clear_errors`), instead of a
``TypeError`` deep inside the training loop or a ``FileNotFoundError`` of
a folder once the runner is built.

The rule for ``--cfg-options`` keys (:func:`check_cfg_options`): a key
``a.b.c`` may add new settings, so an unknown key is refused only when it
looks like a misspelling: walking its parts, the first one that the
config does not have, under a dict it does have, has a close match
among that dict's keys (``difflib`` ratio >= 0.8), e.g.
``train_cfg.max_epoch`` where ``train_cfg`` has ``max_epochs``. Any
other new key (``model.backbone.init_cfg``, ``randomness.seed``) is
added, as MMEngine does.
"""
import difflib
import os
import os.path as osp
from typing import Iterator, List, Optional, Sequence, Tuple

#: ``difflib`` ratio from which a new key is taken for a misspelling
CLOSE_MATCH_CUTOFF = 0.8


class ConfigOptionError(KeyError):
    """A ``--cfg-options`` key looks like a misspelling of an existing
    one."""

    def __str__(self):  # KeyError would show the message quoted
        return str(self.args[0])


class DataNotFoundError(FileNotFoundError):
    """A dataset that the config reads is not on disk."""


def check_cfg_options(cfg, options: Optional[dict]) -> None:
    """Refuse a ``--cfg-options`` key of ``options`` that looks like a
    misspelling of a key of ``cfg`` (the rule is in the module
    docstring): a :class:`ConfigOptionError` naming the key and the close
    matches."""
    for key in options or {}:
        # a Config holds its dict in _cfg_dict (a ConfigDict)
        node, path = getattr(cfg, '_cfg_dict', cfg), []
        for part in str(key).split('.'):
            if isinstance(node, (list, tuple)) and part.isdigit() \
                    and int(part) < len(node):
                node = node[int(part)]
            elif isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, dict) and not part.startswith('_'):
                known = [k for k in node if isinstance(k, str)]
                close = difflib.get_close_matches(
                    part, known, n=3, cutoff=CLOSE_MATCH_CUTOFF)
                if close:
                    parent = '.'.join(path)
                    where = f"'{parent}'" if parent else 'the config'
                    guesses = ' or '.join('.'.join(path + [c]) for c in close)
                    raise ConfigOptionError(
                        f"--cfg-options {key}: {where} has no key "
                        f"'{part}'; did you mean {guesses}? (A new key is "
                        'refused only when it is this close to an existing '
                        'one; to add it anyway, set it in a config that '
                        'inherits this one.)')
                break
            else:
                break
            path.append(part)


# ------------------------------------------------------------------ data

#: the tiny-shapes folder of each task: ``<out_dir>/<folder>/``
TINY_FOLDERS = {'coco': 'det', 'ade': 'seg', 'imagenet': 'cls'}
TINY_NAME = 'tiny_shapes'
#: how each library says to lay out its datasets
DATASET_GUIDES = {
    'mmdet':
    'https://mmdetection.readthedocs.io/en/latest/user_guides/'
    'dataset_prepare.html',
    'mmseg':
    'https://mmsegmentation.readthedocs.io/en/latest/user_guides/'
    '2_dataset_prepare.html',
    'mmpretrain':
    'https://mmpretrain.readthedocs.io/en/latest/user_guides/'
    'dataset_prepare.html',
}


def _leaf_datasets(dataset) -> Iterator[dict]:
    """The datasets inside dataset wrappers (``dataset``, ``datasets``)."""
    if not isinstance(dataset, dict):
        return
    inner = dataset.get('dataset')
    many = dataset.get('datasets')
    if isinstance(inner, dict):
        yield from _leaf_datasets(inner)
    elif isinstance(many, (list, tuple)):
        for d in many:
            yield from _leaf_datasets(d)
    else:
        yield dataset


def _local(path) -> bool:
    return isinstance(path, str) and bool(path) and '://' not in path


def dataset_paths(dataset: dict) -> Tuple[Optional[str], List[str]]:
    """(data root, the files and folders under it) that a dataset config
    reads: ``ann_file``, ``data_prefix`` (a folder or a dict of them) and
    ``split`` (mmpretrain's ImageNet), joined to ``data_root``."""
    root = dataset.get('data_root')
    root = root if _local(root) else None
    prefix = dataset.get('data_prefix')
    parts = [dataset.get('ann_file'), dataset.get('split')]
    parts += list(prefix.values()) if isinstance(prefix, dict) else [prefix]
    paths = [
        p if root is None or osp.isabs(p) else osp.join(root, p) for p in parts
        if _local(p)
    ]
    return root, paths


def _tiny_command(root: str) -> Optional[str]:
    """The command that writes the tiny-shapes data under ``root``, when
    ``root`` is one of its folders (``.../tiny_shapes/<coco|ade|imagenet>``);
    None otherwise."""
    parts = osp.normpath(root).split(os.sep)
    if TINY_NAME not in parts[:-1]:
        return None
    i = len(parts) - 1 - parts[::-1].index(TINY_NAME)
    task = TINY_FOLDERS.get(parts[i + 1])
    out_dir = os.sep.join(parts[:i + 1])
    package = osp.dirname(osp.dirname(osp.abspath(__file__)))
    script = osp.join(
        osp.dirname(package), 'tools', 'misc', 'make_tiny_datasets.py')
    if osp.isfile(script):
        inside = osp.abspath(script).startswith(os.getcwd() + os.sep)
        shown = osp.relpath(script) if inside else script
        command = f'python {shown} --out-dir {out_dir}'
        return command + (f' --tasks {task}' if task else '')
    tasks = f', tasks=[{task!r}]' if task else ''
    return ('python -c "from mmboat.datasets import make_tiny_datasets; '
            f"make_tiny_datasets('{out_dir}'{tasks})\"")


def check_data(cfg, loaders: Sequence[str]) -> None:
    """Refuse, before a runner is built, a config whose datasets (those of
    ``loaders``, e.g. ``('test_dataloader', )``, and the ``ann_file`` of
    their evaluators) are not on disk: a :class:`DataNotFoundError` that
    names the first missing path and the fix (for the tiny-shapes data,
    the one command that writes it; for other data, the paths the config
    reads and the library's guide to their layout)."""
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if not isinstance(loader_cfg, dict):
            continue
        for dataset in _leaf_datasets(loader_cfg.get('dataset')):
            root, paths = dataset_paths(dataset)
            missing = [
                p for p in ([root] if root else []) + paths
                if not osp.exists(p)
            ]
            if missing:
                raise _data_error(cfg, loader, root, paths, missing[0],
                                  f'{loader}.dataset.data_root')
        evaluator = loader.replace('_dataloader', '_evaluator')
        evaluators = cfg.get(evaluator)
        for ev in evaluators if isinstance(evaluators,
                                           (list, tuple)) else [evaluators]:
            ann_file = ev.get('ann_file') if isinstance(ev, dict) else None
            if _local(ann_file) and not osp.exists(ann_file):
                raise _data_error(cfg, evaluator, None, [ann_file], ann_file,
                                  f'{evaluator}.ann_file')


def _data_error(cfg, where: str, root: Optional[str], paths: List[str],
                missing: str, key: str) -> DataNotFoundError:
    looked = '' if osp.isabs(missing) else \
        f' (looked for {osp.abspath(missing)}; data paths are relative to ' \
        'the directory you run from)'
    head = f'the data of {where} is missing: {missing} does not exist{looked}.'
    command = _tiny_command(root or missing)
    if command is not None:
        return DataNotFoundError(
            f'{head}\nThe tiny-shapes data is written by one command (a few '
            f'seconds), run from this directory:\n    {command}')
    reads = '\n'.join(f'    {p}' for p in ([root] if root else []) + paths)
    guide = DATASET_GUIDES.get(cfg.get('default_scope'))
    guide = f' (layout: {guide})' if guide else ''
    return DataNotFoundError(
        f'{head}\nThis config reads:\n{reads}\nPut the dataset there'
        f'{guide}, link it there, or give its place with --cfg-options '
        f'{key}=/path/to/it.')
