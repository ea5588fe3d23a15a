"""What mmboat refuses, and why: one table of bad inputs.

Every row is ``(id, action, error type, message fragment)``: ``action`` is a
function of pytest's ``tmp_path`` that does what a user might do with a bad
input; the test asserts that it raises ``error type`` with a message that
contains ``message fragment`` (case-insensitive). For command-line tools the
action raises ``ToolFailed`` (the tool's exit code and output) when the tool
exits non-zero, so the same table holds them. The README section "What
mmboat refuses, and why" points here: this list is the documentation.
"""
import re

import pytest


class ToolFailed(Exception):
    """A tool of ``tools/`` exited non-zero; the message is its output."""


# ------------------------------------------------------------- models
# backbone arguments, tensors into backbones and FSLA
MODEL_CASES = []

# -------------------------------------------------------- checkpoints
# init_cfg, load_from, converters, tools/test.py
CHECKPOINT_CASES = []

# -------------------------------------------------------------- tools
# command-line arguments of tools/
TOOL_CASES = []

CASES = MODEL_CASES + CHECKPOINT_CASES + TOOL_CASES


@pytest.mark.parametrize('action, error, fragment',
                         [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_input_is_refused(tmp_path, action, error, fragment):
    with pytest.raises(
            error, match=re.compile(re.escape(fragment), re.IGNORECASE)):
        action(tmp_path)
