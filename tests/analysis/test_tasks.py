"""mmboat.analysis.tasks: one table of standard input sizes, which every
analysis tool takes its default size from; and the tools are scripts that
import mmboat, never one another."""
import ast
from pathlib import Path

from mmboat.analysis import TASKS
from mmboat.analysis.tasks import describe_sizes

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools'


def test_standard_inputs():
    # (H, W): mmdet's get_flops 1280 x 800, ADE20K's 2048 x 512, ImageNet
    assert {
        scope: task.input_hw
        for scope, task in TASKS.items()
    } == dict(
        mmdet=(800, 1280), mmseg=(512, 2048), mmpretrain=(224, 224))
    task, hw = TASKS['mmdet']  # a (name, (H, W)) pair, as before
    assert task.startswith('COCO') and hw == (800, 1280)
    assert describe_sizes() == ('H W 800 1280 detection, 512 2048 '
                                'segmentation, 224 224 classification')


def test_no_other_size_table():
    # the sizes the analysis code used before the table are gone from it
    sources = [
        *(REPO / 'mmboat' / 'analysis').glob('*.py'),
        *(TOOLS / 'analysis_tools').glob('*.py')
    ]
    for path in sources:
        if path.name == 'tasks.py':
            continue
        text = path.read_text()
        for size in ('800, 1333', '(512, 512)', '800x1333', '800x1344'):
            assert size not in text, f'{path}: {size}'


def test_no_script_imports_another_script():
    scripts = {p.stem for p in TOOLS.rglob('*.py')}
    for path in TOOLS.rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or '']
            else:
                continue
            for name in names:
                top = name.split('.')[0]
                assert top != 'tools' and top not in scripts, \
                    f'{path.relative_to(REPO)} imports {name}'
