"""tools/analysis_tools/benchmark.py: for tiny configs of both families and
the three tasks, a row per model (BOAT and its baseline, named), a ratio
row that parses, and clear errors for a bad config or shape."""
from pathlib import Path

import pytest

from tests.helpers import load_tool

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools' / 'analysis_tools' / 'benchmark.py'
TINY = REPO / 'configs' / 'tiny'


@pytest.fixture(scope='module')
def tool_main():
    """The tool's ``main(argv)``, in this process."""
    main = load_tool(TOOL).main
    return lambda *args: main([str(a) for a in args])


def table_rows(out):
    """Cells of the markdown rows of the table, header and rule excluded."""
    lines = [line for line in out.splitlines() if line.startswith('| ')]
    return [[c.strip() for c in line.strip('|').split('|')]
            for line in lines[1:]]


@pytest.mark.parametrize('config, args, names, baseline', [
    ('boat-swin-nano_tiny-shapes.py', ('--part', 'model'),
     ('BOAT-Swin', 'Swin (mmpretrain)'),
     'the stock mmpretrain SwinTransformer with the dims of the BOAT-Swin '
     'backbone'),
    ('upernet_boat-cswin-nano_tiny-shapes.py',
     ('--part', 'backbone', '--mode', 'inference'),
     ('BOAT-CSWin', 'BOAT-CSWin without FSLA'),
     'the same backbone with fsla_blocks emptied'),
    ('mask-rcnn_boat-swin-nano_fpn_tiny-shapes.py',
     ('--part', 'model', '--mode', 'train', '--warmup', 0),
     ('BOAT-Swin', 'Swin (mmdet)'), 'the stock mmdet SwinTransformer'),
])
def test_rows_and_ratios(tool_main, capsys, config, args, names, baseline):
    rows = tool_main(TINY / config, '--shape', 64, 64, '--batch', 2,
                     '--repeats', 1, *args)
    out = capsys.readouterr().out
    assert f'baseline: {names[1]}: ' in out and baseline in out
    assert 'input: batch 2 x 3 x 64 x 64' in out
    fsla = 'stage 0: [1], stage 1: [1], stage 2: [1]' \
        if names[0] == 'BOAT-Swin' else \
        'stage 0: [0], stage 1: [0], stage 2: [0], stage 3: [0]'
    assert f'FSLA blocks: {fsla}' in out
    cells = table_rows(out)
    modes = ('inference', 'train') if '--mode' not in args else \
        (args[args.index('--mode') + 1], )
    assert len(cells) == 3
    assert [c[0] for c in cells
            ] == [names[0], names[1], f'ratio {names[0]} / {names[1]}']
    for row in cells:
        assert len(row) == 2 + 2 * len(modes)
        assert all(float(v) > 0 for v in row[1:])
    # the ratios are those of the printed figures (rounding aside)
    boat, base, ratio = ([float(v) for v in row[1:]] for row in cells)
    for b, p, r in zip(boat[:2], base[:2], ratio[:2]):
        assert r == pytest.approx(b / p, rel=0.02, abs=0.01)
    assert list(rows) == list(names)
    assert set(rows[names[0]]) == {'params', *modes}
    # FSLA adds parameters
    assert rows[names[0]]['params'] > rows[names[1]]['params']


def test_bad_config_and_shape(tool_main, tmp_path, capsys):
    cls = TINY / 'boat-swin-nano_tiny-shapes.py'
    with pytest.raises(
            SystemExit,
            match=r'config file .*nope\.py does not '
            'exist; give the path of a .py config'):
        tool_main(tmp_path / 'nope.py')
    with pytest.raises(
            SystemExit,
            match=r'--shape 0 64: height and width '
            'must be at least 1 pixel'):
        tool_main(cls, '--shape', 0, 64)
    with pytest.raises(SystemExit, match='--batch 0: must be at least 1'):
        tool_main(cls, '--batch', 0)
    # the device check the demo and the inferencers use
    with pytest.raises(SystemExit, match="device 'cuda:7'"):
        tool_main(cls, '--device', 'cuda:7')
    with pytest.raises(SystemExit, match="device 'gpu' is not a device"):
        tool_main(cls, '--device', 'gpu')
    stock = tmp_path / 'stock_swin.py'
    stock.write_text(f"_base_ = '{cls}'\nmodel = dict(backbone=dict("
                     "_delete_=True, type='SwinTransformer'))\n")
    with pytest.raises(
            SystemExit,
            match="the backbone is 'SwinTransformer'"
            ', not BOATSwinTransformer or BOATCSWinTransformer'):
        tool_main(stock)
    with pytest.raises(SystemExit):
        tool_main(cls, '--part', 'neck')
    assert "--part: invalid choice: 'neck'" in capsys.readouterr().err
