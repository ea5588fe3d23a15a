"""Command-line handling shared by ``tools/train.py`` and ``tools/test.py``:
the common options, the config they give, and the runner built from it;
errors whose message says what to do end the tool with that message, not
a traceback (:func:`exit_on_clear_errors`). Every Python tool under
``tools/`` ends on an expected error through :func:`exit_with_error`: one
line and status 1 (or 2), or, with ``MMBOAT_DEBUG=1``, the traceback."""
import argparse
import contextlib
import difflib
import glob
import os
import os.path as osp
import sys
from typing import List, NoReturn, Optional

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .checkpoint import (PARTIAL_LOAD_KEY, CheckpointError,
                         checkpoint_is_a_directory, checkpoint_not_found,
                         looked_for)
from .config_checks import (ConfigOptionError, DataNotFoundError,
                            check_cfg_options)
from .dist import use_cpu_distributed
from .mmengine_compat import PACKAGE_DIR


class ConfigNotFoundError(FileNotFoundError):
    """The config file given to a tool does not exist."""


def configs_folder() -> str:
    """mmboat's configs: ``configs/`` of the repository (the installed
    package's ``.mim/configs`` links or copies it)."""
    repository = osp.join(osp.dirname(PACKAGE_DIR), 'configs')
    return repository if osp.isdir(repository) else osp.join(
        PACKAGE_DIR, '.mim', 'configs')


def _shown(path: str) -> str:
    """``path`` relative to the working directory when it is under it."""
    inside = osp.abspath(path).startswith(os.getcwd() + os.sep)
    return osp.relpath(path) if inside else path


def check_config_path(path: str) -> None:
    """Raise :class:`ConfigNotFoundError` naming ``path``, where it was
    looked for, mmboat's configs folder and the configs of that folder with
    the closest names, unless ``path`` is a file."""
    if osp.isfile(path):
        return
    what = 'is a directory, not a config file' if osp.isdir(path) else \
        'does not exist'
    folder = configs_folder()
    configs = glob.glob(osp.join(folder, '**', '*.py'), recursive=True)
    names = {osp.basename(c): c for c in sorted(configs)}
    close = difflib.get_close_matches(osp.basename(path), list(names), n=3)
    hint = f"give the path of a .py config; mmboat's are under " \
        f'{_shown(folder)}/'
    if close:
        hint += ', e.g. ' + ' or '.join(_shown(names[c]) for c in close)
    else:
        hint += ' (e.g. configs/tiny/boat-swin-nano_tiny-shapes.py)'
    raise ConfigNotFoundError(
        f'config file {path} {what}{looked_for(path)}: {hint}')


def check_checkpoint_path(path: str) -> None:
    """Pass a file or a URL (``scheme://...``, which MMEngine downloads);
    raise :class:`~.checkpoint.CheckpointError` for a directory and
    :class:`~.checkpoint.CheckpointNotFoundError` for anything else."""
    if '://' not in path and osp.isdir(path):
        raise checkpoint_is_a_directory(path)
    if '://' not in path and not osp.isfile(path):
        raise checkpoint_not_found(path)


#: set to 1 (anything but empty or 0), a tool's expected errors show their
#: traceback instead of the one-line message (:func:`exit_with_error`)
DEBUG_ENV = 'MMBOAT_DEBUG'


def debugging() -> bool:
    """Whether ``MMBOAT_DEBUG`` asks for tracebacks (``--debug`` sets it)."""
    return os.environ.get(DEBUG_ENV, '') not in ('', '0')


def exit_with_error(
        message: str,
        error: Optional[BaseException] = None,
        parser: Optional[argparse.ArgumentParser] = None) -> NoReturn:
    """End a tool on an expected error: ``message`` on stderr and status 1,
    no traceback (with ``parser``: its usage line and ``message``, status
    2). With ``MMBOAT_DEBUG=1`` raise ``error``, the exception behind the
    message, with its traceback instead (a refusal that has none raises
    ``RuntimeError(message)``, whose traceback shows where it was made)."""
    if debugging():
        if error is not None:
            raise error
        raise RuntimeError(message)
    if parser is not None:
        parser.error(message)
    sys.exit(message)


class _DebugAction(argparse.Action):
    """``--debug``: set ``MMBOAT_DEBUG=1`` (also for the processes the tool
    starts); stores nothing in the parsed arguments."""

    def __init__(self, option_strings, dest, **kwargs):
        kwargs.update(nargs=0, default=argparse.SUPPRESS)
        super().__init__(option_strings, argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        os.environ[DEBUG_ENV] = '1'


def add_debug_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--debug``, the same as ``MMBOAT_DEBUG=1``."""
    parser.add_argument(
        '--debug',
        action=_DebugAction,
        help='on an expected error, show its traceback instead of the '
        f'one-line message (same as {DEBUG_ENV}=1)')


@contextlib.contextmanager
def exit_on_clear_errors(tool: str):
    """Turn the errors whose message says what is wrong and what to do (a
    config that does not exist, a misspelt ``--cfg-options`` key, a
    dataset that is not on disk, a checkpoint that cannot be read, is of
    another family or format, holds NaN or Inf or does not fit the model)
    into the exit of the tool with that message and status 1, without a
    traceback (:func:`exit_with_error`)."""
    try:
        yield
    except (ConfigNotFoundError, ConfigOptionError, DataNotFoundError,
            CheckpointError) as e:
        exit_with_error(f'{tool}: error: {e}', e)


def runner_parser(description: str, config_help: str,
                  work_dir_help: str) -> argparse.ArgumentParser:
    """A parser with the ``config`` argument and ``--work-dir``; a tool adds
    its own arguments, then calls :func:`parse_runner_args`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('config', help=config_help)
    parser.add_argument('--work-dir', help=work_dir_help)
    return parser


def parse_runner_args(parser: argparse.ArgumentParser,
                      argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Add ``--cfg-options``, ``--launcher``, ``--allow-partial``,
    ``--debug`` and ``--local-rank``, parse ``argv`` (default: the command
    line) and set ``LOCAL_RANK`` in the environment when the launcher has
    not."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, xxx=yyy format')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--allow-partial',
        action='store_true',
        help='load a checkpoint whose weights do not fit the model: the '
        'weights that fit are loaded, the others keep their initialisation '
        '(a warning lists them). Without it, a checkpoint that does not fit '
        'a model with an mmboat backbone (missing, unexpected or misshapen '
        'weights, another family, an unconverted release file) stops the '
        f'tool with the list. Same as {PARTIAL_LOAD_KEY}=True in the config')
    add_debug_option(parser)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def load_runner_config(args: argparse.Namespace) -> Config:
    """The config of ``args.config`` with ``--launcher``, ``--cfg-options``,
    ``--allow-partial`` and ``--work-dir`` applied; without a work dir in
    either, it is ``./work_dirs/<config name>``. A config path that is not
    a file raises :class:`ConfigNotFoundError`, a misspelt
    ``--cfg-options`` key :class:`~.config_checks.ConfigOptionError`
    (:func:`~.config_checks.check_cfg_options`)."""
    check_config_path(args.config)
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        check_cfg_options(cfg, args.cfg_options)
        cfg.merge_from_dict(args.cfg_options)
    if args.allow_partial:
        cfg[PARTIAL_LOAD_KEY] = True
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    return cfg


def build_runner(cfg: Config, training: bool) -> Runner:
    """The runner of ``cfg`` (its ``runner_type`` if set), on CPU processes
    with gloo for a distributed run without CUDA
    (:func:`~.dist.use_cpu_distributed`)."""
    use_cpu_distributed(cfg, training=training)
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)
