"""Export the BOAT backbone of a config to ONNX and check it on
onnxruntime (CPU) against PyTorch.

    python tools/deployment/export_onnx.py CONFIG [CHECKPOINT] --shape H W \\
        [--out FILE] [--opset N] [--image IMG] [--repeats R] \\
        [--whole-model]

The ONNX model takes (B, 3, H, W) float32 images of the export size (batch
dynamic; the FSLA cluster layout is frozen for H x W) and returns the
backbone's feature maps ``out0``, ``out1``... (``--whole-model``: a
segmentor's seg logits or a classifier's class logits, ``out0``).
Without a checkpoint the weights are random. The check runs one image
(default: the embedded tiny-shapes data) through the config's test
pipeline and data preprocessor (resized to H x W if needed) and prints the
max abs difference of every output and the CPU latency of onnxruntime and
PyTorch.
"""
import argparse
import os.path as osp


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0] + ' ' + __doc__.split('\n')[1])
    parser.add_argument('config', help='an mmboat config file')
    parser.add_argument(
        'checkpoint', nargs='?', help='weights (default: random)')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        required=True,
        metavar=('H', 'W'),
        help='input height and width, fixed in the exported graph')
    parser.add_argument(
        '--out',
        help='ONNX file (default: work_dirs/onnx/<config>_<H>x<W>.onnx)')
    parser.add_argument(
        '--opset',
        type=int,
        default=18,
        help='ONNX opset, 18 or newer (default: 18)')
    parser.add_argument(
        '--allow-partial',
        action='store_true',
        help='load the weights that fit the backbone (with --whole-model: '
        'the model) and warn about the others, instead of refusing a '
        'checkpoint that does not fit')
    parser.add_argument(
        '--image', help='image to check with (default: tiny-shapes)')
    parser.add_argument(
        '--whole-model',
        action='store_true',
        help='export the whole segmentor or classifier (test forward in '
        'tensor mode: seg logits / class logits), not only the backbone')
    parser.add_argument(
        '--repeats',
        type=int,
        default=5,
        help='timed runs for the latency (0: no timing; default: 5)')
    args = parser.parse_args(argv)
    if min(args.shape) < 1:  # a usage error: status 2
        parser.error(f'--shape must be positive, got {args.shape}')
    return args


def main(argv=None):
    args = parse_args(argv)
    # imported here so that --help answers without loading the model stack
    import torch

    from mmboat.deployment.onnx import (BackboneForExport, ModelForExport,
                                        OnnxModel, check_onnx_path,
                                        check_opset, config_backbone_and_input,
                                        export_backbone_onnx, max_abs_diffs)
    from mmboat.utils import CheckpointError
    from mmboat.utils.benchmark import interleaved_medians
    from mmboat.utils.runner_cli import exit_with_error
    H, W = args.shape
    out = args.out or osp.join(
        'work_dirs', 'onnx',
        f'{osp.splitext(osp.basename(args.config))[0]}_{H}x{W}.onnx')
    try:
        check_opset(args.opset)
        check_onnx_path(out)
        net, image = config_backbone_and_input(args.config, args.checkpoint,
                                               args.image, (H, W),
                                               args.whole_model,
                                               args.allow_partial)
    except (FileNotFoundError, ValueError, CheckpointError) as e:
        exit_with_error(f'error: {e}', e)
    try:
        path = export_backbone_onnx(
            net, (H, W),
            out,
            args.opset,
            metadata={'mmboat.config': osp.basename(args.config)},
            whole_model=args.whole_model)
    except Exception as e:  # the exporter's own failures: no file is left
        exit_with_error(
            f'error: the export failed, nothing was written to {out}: '
            f'{type(e).__name__}: {e}', e)
    wrapper = (ModelForExport if args.whole_model else BackboneForExport)(
        net, (H, W)).eval()
    model = OnnxModel(path, threads=torch.get_num_threads())
    with torch.no_grad():
        expected = wrapper(image)
    got = model(image)
    print(f'input: 1 x 3 x {H} x {W} (batch dynamic, H x W fixed)')
    for i, (diff, t) in enumerate(zip(max_abs_diffs(got, expected), expected)):
        print(f'out{i} {tuple(t.shape)}: max abs difference '
              f'onnxruntime vs PyTorch {diff:.3g}')
    print(f'written: {path} ({osp.getsize(path) / 2**20:.1f} MiB)')
    if args.repeats > 0:

        def torch_step():
            with torch.no_grad():
                wrapper(image)

        medians = interleaved_medians(
            {
                'onnxruntime': lambda: model(image),
                'pytorch': torch_step
            }, args.repeats, torch.device('cpu'))
        print(f'CPU latency, batch 1, {torch.get_num_threads()} thread(s), '
              f'median of {args.repeats}: onnxruntime '
              f'{medians["onnxruntime"] * 1e3:.1f} ms, PyTorch '
              f'{medians["pytorch"] * 1e3:.1f} ms (ratio '
              f'{medians["onnxruntime"] / medians["pytorch"]:.2f})')


if __name__ == '__main__':
    main()
