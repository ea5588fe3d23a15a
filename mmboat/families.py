"""The BOAT families, each described once.

A :class:`Family` holds what the rest of mmboat knows about one family of
published models: its name, its backbone (the class registered as
``backbone_type``), its presets, the weight-name prefixes that only its
unconverted official files have, the script that converts those files,
and the published files. The backbones (:mod:`mmboat.models.backbones`),
the converters and format detection (:mod:`mmboat.converters`), the timm
models (:mod:`mmboat.timm`) and ``tools/analysis_tools/model_zoo.py`` read
these facts from here.

This module is below all of them: it imports only :mod:`mmboat.registry`,
through which :attr:`Family.backbone` finds the backbone class once the
backbones are registered (``import mmboat`` registers them).
"""
from typing import Dict, NamedTuple, Optional, Tuple

from mmboat.registry import MODELS

__all__ = [
    'BOAT_CSWIN', 'BOAT_SWIN', 'FAMILIES', 'Family', 'Release', 'family_of'
]


class Release(NamedTuple):
    """A published checkpoint: the model's name and the file's name."""
    model: str
    file: str


class Family:
    """One family of published BOAT models.

    Args:
        name (str): the BOAT model, e.g. ``'BOAT-Swin'``; the plain model
            it extends is the name without ``BOAT-`` (:attr:`plain_name`).
        backbone_type (str): the name its backbone is registered under in
            MMEngine's ``MODELS`` (:attr:`backbone`).
        arch_zoo (dict): the presets, name (lower case) -> arch dict.
        official_prefixes (tuple[str]): name prefixes that only the weights
            of the family's unconverted official files have (format
            detection, :func:`mmboat.converters.core.official_formats`).
        file_format (str): the layout of those files, in words.
        converter (str): the script that converts them.
        published (dict): preset -> :class:`Release` of the published
            ImageNet-1k checkpoints.
    """

    def __init__(self, name: str, backbone_type: str,
                 arch_zoo: Dict[str, dict], official_prefixes: Tuple[str, ...],
                 file_format: str, converter: str, published: Dict[str,
                                                                   Release]):
        self.name = name
        self.backbone_type = backbone_type
        self.arch_zoo = arch_zoo
        self.official_prefixes = official_prefixes
        self.file_format = file_format
        self.converter = converter
        self.published = published
        self.plain_name = name[len('BOAT-'):]
        #: lower-case name, e.g. ``'boat-swin'``
        self.key = name.lower()

    @property
    def backbone(self) -> type:
        """The backbone class, as registered in MMEngine's ``MODELS``."""
        cls = MODELS.get(self.backbone_type)
        if cls is None:
            raise RuntimeError(
                f'{self.backbone_type} ({self.name}) is not registered: '
                'import mmboat first')
        return cls

    def release(self, arch: dict) -> Optional[Release]:
        """The published checkpoint of the preset with the values of
        ``arch`` (a parsed arch dict), or None when no release has it."""
        for preset, release in self.published.items():
            if all(arch.get(k) == v for k, v in self.arch_zoo[preset].items()):
                return release
        return None

    def __repr__(self):
        return f'Family({self.name})'


# yapf: disable
BOAT_SWIN = Family(
    name='BOAT-Swin',
    backbone_type='BOATSwinTransformer',
    arch_zoo={
        'tiny': dict(embed_dims=96, depths=(2, 2, 6, 2),
                     num_heads=(3, 6, 12, 24)),
        'small': dict(embed_dims=96, depths=(2, 2, 18, 2),
                      num_heads=(3, 6, 12, 24)),
        'base': dict(embed_dims=128, depths=(2, 2, 18, 2),
                     num_heads=(4, 8, 16, 32)),
    },
    official_prefixes=('layers.', 'patch_embed.'),
    file_format='Swin training format',
    converter='tools/model_converters/boat_swin_to_mmboat.py',
    published={
        'tiny': Release('BOAT-Swin-T', 'tiny.pth'),
        'small': Release('BOAT-Swin-S', 'small.pth'),
        'base': Release('BOAT-Swin-B', 'base.pth'),
    })

BOAT_CSWIN = Family(
    name='BOAT-CSWin',
    backbone_type='BOATCSWinTransformer',
    arch_zoo={
        'tiny': dict(embed_dims=64, depths=(1, 2, 21, 1),
                     num_heads=(2, 4, 8, 16), split_sizes=(1, 2, 7, 7)),
        'small': dict(embed_dims=64, depths=(2, 4, 32, 2),
                      num_heads=(2, 4, 8, 16), split_sizes=(1, 2, 7, 7)),
        'base': dict(embed_dims=96, depths=(2, 4, 32, 2),
                     num_heads=(4, 8, 16, 32), split_sizes=(1, 2, 7, 7)),
    },
    official_prefixes=('stage1_conv_embed.', 'stage1.'),
    file_format='timm training format',
    converter='tools/model_converters/boat_cswin_to_mmboat.py',
    published={
        'tiny': Release('BOAT-CSWin-T', 'cswin_tiny.pth.tar'),
        'small': Release('BOAT-CSWin-S', 'cswin_small.pth.tar'),
        'base': Release('BOAT-CSWin-B', 'cswin_base.pth.tar'),
    })
# yapf: enable

#: the families, by :attr:`Family.key` (``'boat-swin'``, ``'boat-cswin'``)
FAMILIES: Dict[str, Family] = {f.key: f for f in (BOAT_SWIN, BOAT_CSWIN)}


def family_of(backbone) -> Optional[Family]:
    """The family of an mmboat backbone (instance or class): its
    ``description``; None for any other object."""
    family = getattr(backbone, 'description', None)
    return family if isinstance(family, Family) else None
