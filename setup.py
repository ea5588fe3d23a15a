import os
import os.path as osp
import shutil
import sys
import warnings
from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))
README = osp.join(HERE, 'README.md')

# What OpenMMLab's tools look for in ``<package>/.mim/``: a config's
# ``_base_ = 'mmboat::boat_swin/x.py'`` is ``mmboat/.mim/configs/boat_swin/
# x.py``, ``mim train mmboat`` runs ``mmboat/.mim/tools/train.py`` and
# ``mim search mmboat`` reads ``mmboat/.mim/model-index.yml`` (which imports
# the ``configs/*/metafile.yml`` files).
MIM_FILES = ('configs', 'tools', 'model-index.yml')
# those left out, with a warning, where the source tree lacks them (a source
# distribution whose MANIFEST.in does not include them)
MIM_OPTIONAL = ('model-index.yml', )


def get_version():
    scope = {}
    with open(osp.join(HERE, 'mmboat', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def parse_requirements(path):
    reqs = []
    with open(osp.join(HERE, path)) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line:
                reqs.append(line)
    return reqs


def add_mim_extension(package_dir, mode):
    """Make ``<package_dir>/.mim`` hold the configs, tools and model index,
    as symlinks (``mode='symlink'``, editable installs) or copies
    (``'copy'``); files are linked or copied like folders."""
    mim_dir = osp.join(package_dir, '.mim')
    if osp.isdir(mim_dir):
        shutil.rmtree(mim_dir)  # removes links, never what they point to
    os.makedirs(mim_dir)
    for name in MIM_FILES:
        src, dst = osp.join(HERE, name), osp.join(mim_dir, name)
        if name in MIM_OPTIONAL and not osp.exists(src):
            warnings.warn(f'{src} not found: {dst} left out')
            continue
        if mode == 'symlink':
            try:
                os.symlink(osp.relpath(src, mim_dir), dst)
                continue
            except OSError as e:
                warnings.warn(f'cannot symlink {dst} -> {src} ({e}); '
                              'copying instead: reinstall mmboat after '
                              f'editing its {name}')
        if osp.isdir(src):
            shutil.copytree(
                src,
                dst,
                ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copyfile(src, dst)


def get_extensions():
    """mmboat's compiled ops: ``mmboat._ext``, the CPU kernel of
    ``mmboat::cluster_order`` (``mmboat/ops/csrc``), built in place by
    editable installs.

    Returns ``(ext_modules, cmdclass)``; no extension with
    ``MMBOAT_WITH_OPS=0`` (as mmcv's ``MMCV_WITH_OPS``) or where torch
    cannot be imported (an isolated build: ``pip install`` without
    ``--no-build-isolation``), in which case the op runs its torch code.
    """
    if os.environ.get('MMBOAT_WITH_OPS', '1') == '0':
        return [], {}
    try:
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError:
        warnings.warn(
            'torch is not importable: mmboat._ext (the compiled '
            'clustering op) is not built; install with '
            '`pip install -e . --no-build-isolation --use-pep517` in an '
            'environment with torch to build it')
        return [], {}
    ext = CppExtension(
        'mmboat._ext',
        sources=['mmboat/ops/csrc/cluster_order.cpp'],
        # no -ffast-math and no FMA contraction: the op's float64 orders
        # must be those of its torch code; -fopenmp: at::parallel_for
        extra_compile_args=[
            '-O3', '-ffp-contract=off', '-fopenmp', '-g0', '-Wno-psabi'
        ],
        extra_link_args=['-fopenmp'])
    return [ext], {'build_ext': BuildExtension.with_options(use_ninja=True)}


EXT_MODULES, EXT_CMDCLASS = get_extensions()


class BuildPyWithMim(build_py):
    """``build_py`` that also copies the ``.mim`` files into the built
    package, so that wheels and ``pip install .`` carry them."""

    def run(self):
        super().run()
        if not self.editable_mode:
            add_mim_extension(osp.join(self.build_lib, 'mmboat'), 'copy')


if {'develop', 'editable_wheel'} & set(sys.argv):
    # editable install (``pip install -e .``): the package is used from the
    # source tree, so link its ``.mim`` files to the live configs and tools
    add_mim_extension(osp.join(HERE, 'mmboat'), 'symlink')

setup(
    name='mmboat',
    version=get_version(),
    description='BOAT (Bilateral lOcal Attention vision Transformer) for '
    'OpenMMLab: backbones for mmdet, mmsegmentation and mmpretrain',
    long_description=open(README).read() if osp.exists(README) else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    # the tiny-shapes pretrained backbones (``mmboat://tiny_shapes/...``)
    package_data={'mmboat': ['checkpoints/*.json', 'checkpoints/*/*.pth']},
    ext_modules=EXT_MODULES,
    cmdclass={
        'build_py': BuildPyWithMim,
        **EXT_CMDCLASS
    },
    python_requires='>=3.8',
    install_requires=parse_requirements('requirements/runtime.txt'),
    extras_require={'tests': parse_requirements('requirements/tests.txt')},
    license='Apache License 2.0',
    zip_safe=False,
)
