"""The options tools/train.py and tools/test.py share
(mmboat/utils/runner_cli.py): --allow-partial, and the checks of the
config and checkpoint paths. What they refuse is in tests/test_bad_inputs.py.
"""
import pytest

from mmboat.utils.checkpoint import PARTIAL_LOAD_KEY, CheckpointNotFoundError
from mmboat.utils.runner_cli import (ConfigNotFoundError,
                                     check_checkpoint_path, check_config_path,
                                     load_runner_config, parse_runner_args,
                                     runner_parser)
from tests.helpers import REPO_ROOT, call_tool_main

CONFIG = str(REPO_ROOT / 'configs' / 'tiny' / 'boat-swin-nano_tiny-shapes.py')


def parse(*argv):
    return parse_runner_args(
        runner_parser('test', 'config', 'work dir'), list(argv))


def test_allow_partial_sets_the_config_key(tmp_path):
    cfg = load_runner_config(parse(CONFIG, '--work-dir', str(tmp_path)))
    assert not cfg.get(PARTIAL_LOAD_KEY, False)
    cfg = load_runner_config(
        parse(CONFIG, '--work-dir', str(tmp_path), '--allow-partial'))
    assert cfg[PARTIAL_LOAD_KEY] is True


@pytest.mark.parametrize('tool', ['train.py', 'test.py'])
def test_help_documents_allow_partial(tool, capsys):
    assert call_tool_main(REPO_ROOT / 'tools' / tool, '--help') == 0
    text = ' '.join(capsys.readouterr().out.split())
    assert '--allow-partial load a checkpoint whose weights do not fit' in text
    assert f'Same as {PARTIAL_LOAD_KEY}=True in the config' in text


def test_paths_that_exist_pass(tmp_path):
    check_config_path(CONFIG)
    (tmp_path / 'x.pth').write_bytes(b'')
    check_checkpoint_path(str(tmp_path / 'x.pth'))
    check_checkpoint_path('https://example.org/x.pth')  # MMEngine downloads


def test_missing_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigNotFoundError) as error:
        check_config_path('cfg.py')
    assert str(error.value).startswith(
        f'config file cfg.py does not exist (looked for {tmp_path}/cfg.py): '
        "give the path of a .py config; mmboat's are under "
        f'{REPO_ROOT}/configs/')
    with pytest.raises(
            CheckpointNotFoundError,
            match=f'checkpoint file x.pth does not exist '
            f'\\(looked for {tmp_path}/x.pth\\)'):
        check_checkpoint_path('x.pth')
