"""Loading an mmboat checkpoint into a BOAT backbone, every weight checked.

What a backbone's family is (presets, published files, the converter of
its official files) is its ``description`` (:mod:`mmboat.families`); what a
file that is not an mmboat checkpoint of it is, format detection says
(:mod:`mmboat.converters.core`); reading the file safely and comparing
weights is :mod:`mmboat.utils.checkpoint`.
"""
import logging
import os
import re
from typing import Optional

import torch
from mmengine.logging import print_log

from mmboat.converters.core import official_formats, what_checkpoint_is
from mmboat.families import family_of
from mmboat.utils.checkpoint import (CheckpointError, CheckpointNotFoundError,
                                     Fit, check_finite_weights,
                                     compare_weights, key_report,
                                     load_checkpoint_file, looked_for,
                                     resolve_checkpoint_path, weights_of)


class WeightsDoNotFitError(CheckpointError):
    """The weights of a checkpoint do not fit the backbone (missing,
    unexpected or misshapen ones); the message lists them."""


def missing_checkpoint_message(backbone: torch.nn.Module, path: str) -> str:
    """Say that ``path`` is missing and which command makes it: the
    converter of the backbone's family, from the published file of its
    architecture when there is one."""
    family = family_of(backbone)
    release = family.release(backbone.arch)
    if release is None:
        source = 'SRC.pth'
        what = 'an official checkpoint of this architecture (SRC.pth)'
    else:
        source = release.file
        what = f'the published {release.model} weights ({source})'
    return (f'pretrained checkpoint {path} of {type(backbone).__name__} '
            f'not found{looked_for(path)}. Convert {what} into it with:\n'
            f'    python {family.converter} {source} {path}\n'
            'or set the backbone\'s init_cfg=None to start from scratch.')


def load_backbone_weights(backbone: torch.nn.Module,
                          path: str,
                          prefix: Optional[str] = None,
                          allow_partial: bool = False) -> dict:
    """Load an mmboat checkpoint into a backbone, every weight checked.

    A missing file raises :class:`~mmboat.utils.CheckpointError` with the
    converter command that makes it (:func:`missing_checkpoint_message`).
    The file is read with :func:`mmboat.utils.load_checkpoint_file`. An
    official release file (of any family:
    :func:`mmboat.converters.core.official_formats`) is refused with the
    command that converts it. With ``backbone.*`` keys (an mmboat
    classifier checkpoint) only those are used; otherwise ``head.*`` /
    ``neck.*`` are ignored. Output norms ``norm{i}`` may be absent (a
    classifier has only the last one: they keep their fresh
    initialisation) or unused; any other missing, unexpected or misshapen
    weight raises :class:`~mmboat.utils.CheckpointError` listing them all,
    and saying so when they are the weights of another family; with
    ``allow_partial`` the same is a warning, and the weights that fit
    (name and shape) are loaded. Weights that hold NaN or Inf are always
    refused (:func:`mmboat.utils.checkpoint.check_finite_weights`).

    Args:
        backbone (nn.Module): the BOAT backbone to load into.
        path (str): the checkpoint file (``mmboat://NAME``: a file shipped
            with the package).
        prefix (str, optional): use only the weights under this prefix,
            stripped (``init_cfg``'s ``prefix``, as in MMEngine's
            ``PretrainedInit``), e.g. ``'backbone.'``. Default: the rule
            above.
        allow_partial (bool): load the weights that fit and warn about
            the others instead of refusing (``--allow-partial`` of the
            tools). Default: False.

    Returns:
        dict: the checkpoint, as read.
    """
    name = type(backbone).__name__
    path = resolve_checkpoint_path(path)
    if not os.path.isfile(path):
        raise CheckpointNotFoundError(
            missing_checkpoint_message(backbone, path))
    ckpt = load_checkpoint_file(path)
    if official_formats(ckpt):
        raise CheckpointError(what_checkpoint_is(ckpt, path, backbone))
    state_dict = weights_of(ckpt, path, places=('state_dict', 'model'))
    if prefix is not None and not any(
            k.startswith(prefix) for k in state_dict):
        raise CheckpointError(
            f"{path} has no weights under init_cfg's prefix {prefix!r}; its " +
            key_report('keys', sorted(state_dict), 3) +
            'Remove `prefix` or set it to the one the file uses.')
    prefix = 'backbone.' if prefix is None else prefix
    if any(k.startswith(prefix) for k in state_dict):
        state_dict = {
            k[len(prefix):]: v
            for k, v in state_dict.items() if k.startswith(prefix)
        }
    else:
        state_dict = {
            k: v
            for k, v in state_dict.items()
            if not k.startswith(('head.', 'neck.'))
        }
    check_finite_weights(state_dict, path)
    own = backbone.state_dict()
    fit = compare_weights(own, state_dict)
    is_output_norm = re.compile(r'norm\d+\.').match
    fresh = [k for k in fit.missing if is_output_norm(k)]
    unused = [k for k in fit.unexpected if is_output_norm(k)]
    fit = Fit([k for k in fit.missing if k not in fresh],
              [k for k in fit.unexpected if k not in unused], fit.mismatched)
    if fit:
        other = what_checkpoint_is({'state_dict': state_dict}, path, backbone,
                                   '')
        advice = 'Give a checkpoint of this family.' if other else (
            'Check arch and fsla_blocks against the checkpoint (its meta '
            'says how it was converted).')
        message = (f'{path} does not fit this {name}:\n' +
                   (f'{other}\n' if other else '') + fit.report())
        if not allow_partial:
            raise WeightsDoNotFitError(message + advice)
        print_log(
            message + 'A partial load was asked for (--allow-partial): the '
            'weights that fit are loaded, the others keep their '
            'initialisation.',
            logger='current',
            level=logging.WARNING)
    ours = {
        k: v
        for k, v in state_dict.items()
        if k in own and torch.is_tensor(v) and v.shape == own[k].shape
    }
    backbone.load_state_dict(ours, strict=False)

    def norms(keys):
        return sorted({k.split('.')[0] for k in keys})

    print_log(
        f'{name}: loaded {len(ours)} tensors from {path}' +
        (f'; output norms not in the checkpoint start fresh: '
         f'{norms(fresh)}' if fresh else '') +
        (f'; unused output norms: {norms(unused)}' if unused else ''),
        logger='current')
    return ckpt
