"""Where mmboat registers its modules, and its ``mmboat`` scope.

mmboat registers its models and its dataset into MMEngine's root ``MODELS``
and ``DATASETS`` registries, the parents of those of mmdet, mmsegmentation
and mmpretrain.
A config of any of them finds ``type='BOATSwinTransformer'`` once
``mmboat`` is imported, e.g. with::

    custom_imports = dict(imports=['mmboat'], allow_failed_imports=False)

Importing ``mmboat`` imports MMEngine and mmcv's layers, none of the
models of mmdet, mmsegmentation or mmpretrain, and never changes the
default scope.

A config inherits mmboat's configs the way it inherits mmdet's,
``_base_ = 'mmboat::boat_swin/x.py'``, with nothing of MMEngine replaced:

* :func:`register_config_package` adds ``mmboat`` to MMEngine's package
  table (``MODULE2PACKAGE``), which MMEngine 0.10 requires of a ``pkg::``
  prefix. The entry is the module name :data:`CONFIG_ANCHOR`, which no
  distribution has: MMEngine's ``get_installed_path`` then finds it with
  ``importlib.util.find_spec``, whose folder is the imported package's,
  wherever it is (the distribution ``mmboat``'s location would be
  site-packages for a PEP 660 editable install, where the package is not).
  The config is then read from ``mmboat/.mim/configs/``, where
  ``pip install -e`` links and ``pip install`` copies the repository's
  ``configs/``.
* MMEngine gives every typed dict of the inherited file that has no
  ``_scope_`` the scope ``mmboat``. mmboat's configs are mmdet, mmseg and
  mmpretrain configs without a scope of their own, so the registries of
  the ``mmboat`` scope (one under each of MMEngine's root registries,
  created here, as every OpenMMLab codebase creates its scope's
  registries in its ``registry`` module) hold nothing and build with the
  registries of the scope in use around them (:class:`InheritedScope`):
  a dataset of an mmpretrain config inherited with ``mmboat::`` is looked
  up in mmpretrain's ``DATASETS``, as when the config is loaded by path.
"""
from importlib import import_module
from typing import Optional

import mmengine.registry as mmengine_registry
from mmengine.config.utils import MODULE2PACKAGE
from mmengine.registry import MODELS, DefaultScope, Registry

__all__ = ['MODELS', 'SCOPE', 'InheritedScope', 'register_config_package']

#: the scope of the typed dicts of configs inherited with ``mmboat::``
SCOPE = 'mmboat'
#: a module of the package: MMEngine finds ``mmboat::`` configs under
#: ``.mim/configs`` of its folder
CONFIG_ANCHOR = 'mmboat.registry'


def scope_in_use() -> Optional[str]:
    """The innermost default scope other than :data:`SCOPE`, or None.

    MMEngine replaces the default scope by the ``_scope_`` of the dict it
    builds; this is the scope that was in use before any ``mmboat``.
    ``DefaultScope`` keeps its instances in creation order and offers no
    other way to read the enclosing ones.
    """
    for instance in reversed(list(DefaultScope._instance_dict.values())):
        if instance.scope_name != SCOPE:
            return instance.scope_name
    return None


def _find(registry: Registry, scope: str) -> Optional[Registry]:
    """The registry of ``scope`` in the tree under ``registry``."""
    if registry.scope == scope:
        return registry
    for child in registry.children.values():
        found = _find(child, scope)
        if found is not None:
            return found
    return None


class InheritedScope(Registry):
    """A registry of the ``mmboat`` scope: empty, it finds a name in the
    registry of the same tree for the scope in use (:func:`scope_in_use`),
    or in its parent, MMEngine's root registry, when that scope has
    none. Names with another scope (``'mmdet.X'``) and full module paths
    are found as by any registry."""

    def get(self, key):
        scope, name = self.split_scope_key(key)
        if scope not in (None, self.scope) or '.' in name:
            return super().get(key)
        in_use = scope_in_use()
        registry = _find(self.parent, in_use) if in_use else None
        if registry is None and in_use:
            # its registries exist once its registry module is imported, as
            # MMEngine's switch_scope_and_registry does
            try:
                import_module(f'{in_use}.registry')
            except ImportError:
                pass
            registry = _find(self.parent, in_use)
        # (an empty registry is falsy: its modules may not be imported yet)
        return (self.parent if registry is None else registry).get(name)


def _add_scope_registries() -> None:
    """An :class:`InheritedScope` under each of MMEngine's root registries
    that has none yet."""
    for name in dir(mmengine_registry):
        root = getattr(mmengine_registry, name)
        if (isinstance(root, Registry) and root.parent is None
                and SCOPE not in root.children):
            InheritedScope(
                root.name, parent=root, scope=SCOPE, locations=['mmboat'])


def register_config_package() -> None:
    """Let configs inherit mmboat's: ``_base_ = 'mmboat::...'`` (see the
    module docstring)."""
    MODULE2PACKAGE.setdefault(SCOPE, CONFIG_ANCHOR)


_add_scope_registries()
