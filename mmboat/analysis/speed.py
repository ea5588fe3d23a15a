"""Time and peak memory of a BOAT model against its baseline, on a
synthetic batch: what ``tools/analysis_tools/benchmark.py`` and
``benchmark_fsla.py`` measure (the scripts parse arguments and print)."""
import copy
import sys

import numpy as np
import torch

from .tasks import TASKS

MODES = ('inference', 'train')
#: keys shared by the BOAT backbones and the stock Swin backbones
SWIN_COMMON_KEYS = ('in_channels', 'window_size', 'drop_rate',
                    'drop_path_rate', 'out_indices', 'frozen_stages',
                    'with_cp')
#: BOAT-only keys, dropped for the stock Swin
BOAT_ONLY_KEYS = ('type', 'arch', 'fsla_blocks', 'fsla_cfg', 'init_cfg',
                  'pretrain_img_size')


def load_config(path):
    """The config, with the model's data preprocessor where MMEngine's
    runner puts it, and its library (``default_scope``)."""
    from mmboat.apis import load_config as load
    cfg = load(path)
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        raise ValueError(f'{path} has default_scope={scope!r}: the '
                         'benchmark builds models of mmdet, mmseg and '
                         'mmpretrain configs; inherit one of their configs')
    backbone = cfg.model.get('backbone', {}).get('type')
    if backbone not in ('BOATSwinTransformer', 'BOATCSWinTransformer'):
        raise ValueError(f'{path}: the backbone is {backbone!r}, not '
                         'BOATSwinTransformer or BOATCSWinTransformer; give '
                         'a config of configs/boat_swin, configs/boat_cswin '
                         'or configs/tiny')
    if 'data_preprocessor' in cfg and \
            'data_preprocessor' not in cfg.model:
        cfg.model.data_preprocessor = copy.deepcopy(cfg.data_preprocessor)
    cfg.model.backbone.init_cfg = None  # random weights: no checkpoint
    return cfg, scope


def build(model_cfg, scope, device):
    """A model of ``scope`` from its config, SyncBN reverted to BN (as
    MMEngine's runner does outside distributed runs), on ``device``."""
    from mmengine.model.utils import revert_sync_batchnorm
    from mmengine.registry import MODELS, DefaultScope
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(copy.deepcopy(model_cfg))
    return revert_sync_batchnorm(model).to(device)


def count_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def no_fsla(backbone_cfg, num_stages):
    cfg = copy.deepcopy(backbone_cfg)
    cfg['fsla_blocks'] = [[] for _ in range(num_stages)]
    return cfg


def stock_swin(backbone_cfg, arch, scope):
    """The config of the stock Swin of ``scope`` with the dims of a
    BOAT-Swin backbone config, or None when a key has no counterpart."""
    cfg = {k: v for k, v in backbone_cfg.items() if k not in BOAT_ONLY_KEYS}
    unmapped = set(cfg) - set(SWIN_COMMON_KEYS) - {
        'mlp_ratio', 'qkv_bias', 'attn_drop_rate'
    }
    if unmapped:
        return None
    if scope == 'mmpretrain':
        # mmpretrain's Swin has mlp ratio 4, qkv bias and no attention
        # dropout fixed; small maps padded to the window as BOAT-Swin does
        if (cfg.pop('mlp_ratio', 4) != 4 or not cfg.pop('qkv_bias', True)
                or cfg.pop('attn_drop_rate', 0) != 0):
            return None
        return dict(
            type='mmpretrain.SwinTransformer',
            arch=dict(arch),
            pad_small_map=True,
            **cfg)
    return dict(
        type=f'{scope}.SwinTransformer',
        embed_dims=arch['embed_dims'],
        depths=arch['depths'],
        num_heads=arch['num_heads'],
        **cfg)


def baseline_backbone(cfg, scope):
    """The baseline's backbone config, its name in the table and a line
    that says what it is."""
    from mmboat.models.backbones import BOATSwinTransformer
    backbone_cfg = cfg.model.backbone.to_dict()
    boat = build(backbone_cfg, scope, 'cpu')
    family = boat.family
    plain_cfg = no_fsla(backbone_cfg, len(boat.stages))
    plain = f'{family} without FSLA'
    emptied = f'{plain}: the same backbone with fsla_blocks emptied'
    if not isinstance(boat, BOATSwinTransformer):
        return plain_cfg, plain, f'{emptied} (OpenMMLab has no stock CSWin)'
    stock_cfg = stock_swin(backbone_cfg, boat.arch, scope)
    if stock_cfg is None:
        return plain_cfg, plain, (f'{emptied} (the stock {scope} Swin has no '
                                  'counterpart of one of its options)')
    plain_params = count_params(build(plain_cfg, scope, 'cpu'))
    stock_params = count_params(build(stock_cfg, scope, 'cpu'))
    if stock_params != plain_params:
        return plain_cfg, plain, (
            f'{emptied} (the stock {scope} Swin of the same dims has '
            f'{stock_params} parameters, {plain} {plain_params})')
    arch = boat.arch
    return stock_cfg, f'Swin ({scope})', (
        f'Swin ({scope}): the stock {scope} SwinTransformer with the dims '
        f"of the {family} backbone (embed_dims {arch['embed_dims']}, depths "
        f"{tuple(arch['depths'])}, num_heads {tuple(arch['num_heads'])}, "
        f'window {boat.window_size}), i.e. {plain}: {stock_params} '
        'parameters in both')


def synthetic_batch(scope, batch, shape, seed=0):
    """``batch`` tiny-shapes images of ``shape`` with the targets of the
    task, as a data loader of ``scope`` gives them: ``inputs`` (3, H, W)
    uint8 BGR and ``data_samples`` with ground truth."""
    from mmboat.datasets import draw_scene
    H, W = shape
    rng = np.random.default_rng(seed)
    inputs, samples = [], []
    for _ in range(batch):
        image, objects = draw_scene(rng, max(H, W), 3)
        image = image[:H, :W]
        masks = [(o['mask'][:H, :W], o['label']) for o in objects]
        masks = [(m, label) for m, label in masks if m.any()]
        inputs.append(
            torch.from_numpy(image[..., ::-1].copy()).permute(2, 0,
                                                              1).contiguous())
        meta = dict(
            img_shape=(H, W),
            ori_shape=(H, W),
            pad_shape=(H, W),
            scale_factor=(1., 1.))
        samples.append(_sample(scope, meta, masks, (H, W)))
    return dict(inputs=inputs, data_samples=samples)


def _sample(scope, meta, masks, shape):
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        from mmdet.structures.mask import BitmapMasks
        from mmengine.structures import InstanceData
        boxes = []
        for m, _ in masks:
            ys, xs = np.nonzero(m)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        sample = DetDataSample(metainfo=meta)
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor(boxes, dtype=torch.float32).view(-1, 4),
            labels=torch.tensor([label for _, label in masks]),
            masks=BitmapMasks(
                np.stack([m for m, _ in masks]) if masks else np.zeros(
                    (0, ) + shape, np.uint8), *shape))
        return sample
    if scope == 'mmseg':
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample
        label_map = np.zeros(shape, np.int64)
        for m, label in masks:  # back to front
            label_map[m] = label + 1
        sample = SegDataSample(metainfo=meta)
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(label_map)[None])
        return sample
    from mmpretrain.structures import DataSample
    label = max(masks, key=lambda m: m[0].sum())[1] if masks else 0
    return DataSample(metainfo=meta).set_gt_label(label)


def make_steps(model, part, data, optim_cfg):
    """The inference and training step of ``model`` (the whole model, or
    its backbone alone when ``part`` is 'backbone') on ``data``."""
    from mmengine.optim import build_optim_wrapper
    backbone = model.backbone
    trained = backbone if part == 'backbone' else model
    optim_cfg = copy.deepcopy(optim_cfg)
    if 'Amp' in optim_cfg.get('type', '') and \
            next(model.parameters()).device.type == 'cpu':
        optim_cfg['type'] = 'OptimWrapper'  # no AMP on the CPU
    optim_wrapper = build_optim_wrapper(trained, optim_cfg)
    with torch.no_grad():
        inputs = model.data_preprocessor(data, False)['inputs']

    def inference():
        trained.eval()
        with torch.no_grad():
            if part == 'backbone':
                return backbone(inputs)
            batch = model.data_preprocessor(data, False)
            return model(**batch, mode='tensor')

    def train():
        trained.train()
        if part == 'model':
            return model.train_step(data, optim_wrapper)
        with optim_wrapper.optim_context(backbone):
            outs = backbone(inputs)
            loss = sum(out.float().mean() for out in outs)
        optim_wrapper.update_params(loss)
        return loss

    return dict(inference=inference, train=train), tuple(inputs.shape)


def measure(cfg, scope, args, device):
    """Medians and peaks of the BOAT config and its baseline.

    Returns:
        tuple: rows ``{name: {params, <mode>: (images per second, peak
        bytes)}}`` (the BOAT model first) and the lines that say what was
        measured: ``baseline``, ``fsla`` (the FSLA blocks of the BOAT
        backbone) and ``input`` (the (B, 3, H, W) input of the backbone).
    """
    from mmengine.utils import ProgressBar

    from mmboat.utils.benchmark import interleaved_medians, peak_memory
    shape = tuple(args.shape or TASKS[scope].input_hw)
    modes = MODES if args.mode == 'both' else (args.mode, )
    base_cfg, base_name, base_line = baseline_backbone(cfg, scope)
    models = {}
    for backbone_cfg in (cfg.model.backbone, base_cfg):
        model_cfg = copy.deepcopy(cfg.model)
        model_cfg.backbone = backbone_cfg
        torch.manual_seed(0)
        model = build(model_cfg, scope, device)
        name = base_name if models else model.backbone.family
        models[name] = model
    data = synthetic_batch(scope, args.batch, shape)
    steps, rows = {}, {}
    for name, model in models.items():
        steps[name], input_shape = make_steps(model, args.part, data,
                                              cfg.optim_wrapper)
        part = model.backbone if args.part == 'backbone' else model
        rows[name] = dict(params=count_params(part))
    bar = ProgressBar(
        len(modes) * len(models) * (args.warmup + args.repeats + 1),
        file=sys.stderr)
    for mode in modes:
        mode_steps = {name: s[mode] for name, s in steps.items()}
        medians = interleaved_medians(mode_steps, args.repeats, device,
                                      args.warmup, bar.update)
        for name, step in mode_steps.items():
            peak = peak_memory(step, device)
            bar.update()
            rows[name][mode] = (args.batch / medians[name], peak)
    sys.stderr.write('\n')
    boat = next(iter(models.values())).backbone
    fsla = ', '.join(f'stage {i}: {list(b)}'
                     for i, b in enumerate(boat.fsla_blocks) if b)
    return rows, dict(
        baseline=base_line, fsla=fsla or 'none', input=input_shape)


def table(rows, modes):
    """Markdown rows: one per model, then the ratios BOAT / baseline."""
    head = ['model', 'params (M)']
    for mode in modes:
        head += [f'{mode} (img/s)', f'{mode} peak (MiB)']
    lines = ['| ' + ' | '.join(head) + ' |', '|---' * len(head) + '|']
    for name, row in rows.items():
        cells = [name, f"{row['params'] / 1e6:.2f}"]
        for mode in modes:
            speed, peak = row[mode]
            cells += [f'{speed:.2f}', f'{peak / 2**20:.1f}']
        lines.append('| ' + ' | '.join(cells) + ' |')
    (boat_name, boat), (base_name, base) = rows.items()
    cells = [
        f'ratio {boat_name} / {base_name}',
        f"{boat['params'] / base['params']:.2f}"
    ]
    for mode in modes:
        cells += [
            f'{boat[mode][0] / base[mode][0]:.2f}',
            f'{boat[mode][1] / max(base[mode][1], 1):.2f}'
        ]
    lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)
