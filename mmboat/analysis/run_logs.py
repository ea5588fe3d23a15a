"""What a run's MMEngine logs say: the records of its
``<timestamp>/vis_data/scalars.json`` over all its sessions, and the val
top-1 curve of a stream pretraining run (what
``tools/misc/publish_tiny_checkpoint.py`` records in the manifest and
``tools/analysis_tools/plot_pretraining.py`` draws). A run whose backbone
starts from a shipped checkpoint (a second cycle) counts its steps on from
that checkpoint's."""
import glob
import json
import os.path as osp
from typing import Iterator, List, Tuple

from mmengine.config import Config

from mmboat.utils.checkpoint import shipped_backbone_entry

Curve = List[Tuple[int, float]]


def scalar_records(work_dir: str) -> Iterator[dict]:
    """Every record of the run's ``scalars.json`` files, session after
    session (``--resume`` starts a new ``<timestamp>`` folder)."""
    for path in sorted(
            glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                yield json.loads(line)


def run_config(work_dir: str) -> str:
    """The ``*_stream-pretrain*.py`` config dumped in ``work_dir``; a
    ValueError naming the folder when there is not exactly one."""
    configs = glob.glob(osp.join(work_dir, '*_stream-pretrain*.py'))
    if len(configs) != 1:
        raise ValueError(f'{work_dir}: no dumped *_stream-pretrain*.py '
                         'config; is it the work dir of a pretraining run?')
    return configs[0]


def start_step(cfg: Config) -> int:
    """The training steps the backbone of ``cfg`` had before its run: those
    of the shipped checkpoint its ``init_cfg`` starts from (the manifest's
    ``steps``), else 0."""
    entry = shipped_backbone_entry(cfg)
    return entry['steps'] if entry else 0


def val_curve(work_dir: str) -> Tuple[str, Curve]:
    """(config name, [(step, val top-1)]) of the run in ``work_dir``, one
    point per validated epoch, over all its sessions (``--resume``); a
    later session's value of an epoch replaces an earlier one. Steps count
    from the start of the backbone's training (:func:`start_step`)."""
    config = run_config(work_dir)
    cfg = Config.fromfile(config)
    loader, start = cfg.train_dataloader, start_step(cfg)
    iters_per_epoch = -(-loader.dataset.images_per_epoch // loader.batch_size)
    by_epoch = {
        rec['step']: rec['accuracy/top1']
        for rec in scalar_records(work_dir) if 'accuracy/top1' in rec
    }
    name = osp.splitext(osp.basename(config))[0]
    return name, [(start + e * iters_per_epoch, by_epoch[e])
                  for e in sorted(by_epoch)]
