"""The environment, for bug reports: MMEngine's ``collect_env`` (platform,
Python, CUDA, compilers, PyTorch, TorchVision, OpenCV, MMEngine), the
mmboat version and what mmboat's modules report, e.g. which kernel its
clustering op runs on the CPU::

    python -m mmboat.utils.collect_env

As :mod:`mmboat.utils` imports nothing else of mmboat, those modules add
their lines with :func:`register_env_info` when they are imported (by
``import mmboat``, which importing this module runs first).
"""
import subprocess
from collections import OrderedDict
from importlib import metadata
from pathlib import Path
from typing import Callable, Dict

from mmengine.utils.dl_utils import collect_env as collect_base_env

#: name -> function that gives the value, in the order of registration
_ENV_INFO: Dict[str, Callable[[], str]] = OrderedDict()


def register_env_info(name: str) -> Callable:
    """Decorator: ``fn()`` gives the ``name`` line of :func:`collect_env`."""

    def register(fn: Callable[[], str]) -> Callable[[], str]:
        _ENV_INFO[name] = fn
        return fn

    return register


def _mmboat_version() -> str:
    """The installed distribution's version, with the commit of the
    checkout mmboat is imported from as mmdet reports it (``+`` and 7 hex
    digits; none outside a git checkout)."""
    try:
        version = metadata.version('mmboat')
    except metadata.PackageNotFoundError:
        version = 'not installed'
    try:
        sha = subprocess.run(['git', 'rev-parse', '--short=7', 'HEAD'],
                             cwd=Path(__file__).parent,
                             capture_output=True,
                             text=True,
                             timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ''
    return f'{version}+{sha}' if sha else version


def collect_env() -> Dict[str, str]:
    """MMEngine's environment information, the mmboat version and the
    lines registered with :func:`register_env_info`."""
    env_info = collect_base_env()
    env_info['mmboat'] = _mmboat_version()
    for name, describe in _ENV_INFO.items():
        env_info[name] = describe()
    return env_info


if __name__ == '__main__':
    # the registrations went to the imported module, not to __main__
    from mmboat.utils.collect_env import collect_env as _collect_env
    for name, value in _collect_env().items():
        print(f'{name}: {value}')
