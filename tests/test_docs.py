"""The docs cannot go stale: every fenced ``bash`` / ``python`` block of the
root README, of ``docs/*.md`` and of the config READMEs is run, loaded or
has its arguments checked, as the HTML comment before it says:

- ``<!-- doc-test: run -->``: run it (bash: in a shell; python: in the
  worker interpreter) from a scratch copy of the repository;
- ``<!-- doc-test: slow -->``: the same, in the slow tests only;
- ``<!-- doc-test: config -->``: load the config with MMEngine after
  ``import mmboat``, build its model, check its hooks, loops, datasets and
  transforms are registered;
- ``<!-- doc-test: help -->``: run each command's script with ``--help``
  and check that every ``--option`` of the command is in that help and
  every ``configs/...`` path exists (commands that need GPUs, data,
  published checkpoints or hours);
- ``<!-- doc-test: dry-run -->``: run ``dist_*.sh`` / ``slurm_*.sh`` with
  stand-ins for ``python`` and ``srun`` that record their arguments, check
  the launcher's arguments and parse the tool's with its own parser;
- ``<!-- doc-test: skip: REASON -->``: nothing (the reason names what
  covers it);
- ``<!-- doc-test: output -->`` before a ``text`` block after a run block:
  every line of it (but ``...``) is in what that block printed.

A block without a mark fails ``test_every_block_is_marked``. The scratch
copy links the repository's ``tools``, ``configs``, ``mmboat``, ``.venv``
... and has its own ``data`` (the tiny-shapes data), ``work_dirs``,
``checkpoints``, ``outputs`` and ``docs``: nothing is written into the
repository. A checkpoint that a command reads and that nothing has made
(``work_dirs/<config>/epoch_N.pth``,
``checkpoints/boat-<fam>-<size>_in1k_mmboat.pth``) is written there first
with the random weights of that config's model.
"""
import concurrent.futures
import json
import multiprocessing
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import pytest

from tests import docs_worker
from tests.helpers import REPO_ROOT

DOC_FILES = [
    'README.md',
    *sorted(
        p.relative_to(REPO_ROOT).as_posix()
        for p in (REPO_ROOT / 'docs').glob('*.md')),
    'configs/boat_swin/README.md',
    'configs/boat_cswin/README.md',
]
# fenced blocks that must carry a mark: shell and Python, or no language
MARKED_LANGUAGES = {'', 'bash', 'sh', 'shell', 'console', 'python', 'py'}
MODES = ('run', 'slow', 'config', 'help', 'dry-run', 'skip', 'output')
MARK = re.compile(r'^<!-- doc-test: ([a-z-]+)(?:: (.*?))? -->$')
FENCE = re.compile(r'^(`{3,})\s*([\w+-]*)\s*$')

# Marks of the blocks of pages this test does not edit, by page and the
# first line of the block.
PRETRAINING = 'docs/tiny_shapes_pretraining.md'
EXTERNAL_MARKS = {
    (PRETRAINING, 'train_dataloader = dict('): ('config', None),
    # hours of pretraining on a CPU
    (PRETRAINING, 'W=~/.cache/mmboat/pretrain'): ('help', None),
    # fine-tunes twelve tiny models per seed
    (PRETRAINING, 'python tools/analysis_tools/fsla_ablation.py '
     '--work-dir ~/.cache/mmboat/ablation \\'): ('help', None),
}

# what the scratch copy links from the repository, and what it has of its
# own (written by the commands)
LINKED = ('tools', 'configs', 'mmboat', 'mmboat.egg-info', '.venv',
          'requirements', 'setup.py', 'setup.cfg', 'pytest.ini', 'tests',
          'model-index.yml')
OWN = ('data', 'work_dirs', 'checkpoints', 'outputs', 'docs')
SITE = REPO_ROOT / '.venv' / 'lib' / (
    f'python{sys.version_info[0]}.{sys.version_info[1]}') / 'site-packages'
# how long a block may take (seconds)
TIMEOUT = dict(run=300, slow=1800)
# what the block that writes the tiny-shapes data printed, when the
# workspace fixture ran it
DATA_WRITTEN = {}


@dataclass
class Block:
    page: str
    line: int  # of the opening fence, from 1
    language: str
    text: str
    mode: Optional[str]
    arg: Optional[str]
    mark_line: Optional[int]

    @property
    def id(self):
        return f'{self.page}:{self.line}'

    @property
    def first_line(self):
        return next((s.strip() for s in self.text.splitlines() if s.strip()),
                    '')


def read_blocks(page: str) -> List[Block]:
    """The fenced blocks of a page with the mark on the line before."""
    lines = (REPO_ROOT / page).read_text().splitlines()
    blocks, k = [], 0
    while k < len(lines):
        m = FENCE.match(lines[k])
        if not m:
            k += 1
            continue
        fence, language = m.groups()
        end = k + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        mode = arg = mark_line = None
        mark = MARK.match(lines[k - 1].strip()) if k else None
        if mark:
            mode, arg, mark_line = mark.group(1), mark.group(2), k - 1
        text = '\n'.join(lines[k + 1:end]) + '\n'
        block = Block(page, k + 1, language.lower(), text, mode, arg,
                      mark_line)
        if mode is None and (page, block.first_line) in EXTERNAL_MARKS:
            block.mode, block.arg = EXTERNAL_MARKS[page, block.first_line]
        blocks.append(block)
        k = end + 1
    return blocks


BLOCKS = [block for page in DOC_FILES for block in read_blocks(page)]
TESTED = [
    b for b in BLOCKS if b.mode in ('run', 'slow', 'config', 'help', 'dry-run')
]


def test_every_block_is_marked():
    """Every shell or Python block carries a known mark; a skip says why;
    an output mark sits on a text block right after a run block; every mark
    is right before a block."""
    problems = []
    for block in BLOCKS:
        where = f'{block.id} ({block.first_line[:60]!r})'
        if block.language in MARKED_LANGUAGES and block.mode is None:
            problems.append(f'{where}: no <!-- doc-test: ... --> mark')
        elif block.mode is not None and block.mode not in MODES:
            problems.append(f'{where}: unknown mode {block.mode!r}')
        elif block.mode == 'skip' and not (block.arg or '').strip():
            problems.append(f'{where}: a skip needs a reason')
        elif block.mode == 'output' and block.language not in ('text', ''):
            problems.append(f'{where}: output marks a text block')
        elif block.mode != 'output' and block.mode is not None and \
                block.language not in MARKED_LANGUAGES:
            problems.append(f'{where}: {block.mode} on a {block.language} '
                            'block')
    for page in DOC_FILES:
        blocks = read_blocks(page)
        marks = {b.mark_line for b in blocks}
        lines = (REPO_ROOT / page).read_text().splitlines()
        for k, line in enumerate(lines):
            if MARK.match(line.strip()) and k not in marks:
                problems.append(f'{page}:{k + 1}: a mark with no block '
                                'right after it')
        for before, block in zip(blocks, blocks[1:]):
            if block.mode == 'output' and before.mode not in ('run', 'slow'):
                problems.append(f'{block.id}: output after a block that is '
                                'not run')
    assert not problems, '\n'.join(problems)


def test_external_marks_are_used():
    """Each mark kept here for a page this test does not edit still finds
    its block."""
    used = {(b.page, b.first_line) for b in BLOCKS}
    assert set(EXTERNAL_MARKS) <= used, set(EXTERNAL_MARKS) - used


# ------------------------------------------------------------------ links
def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a markdown heading."""
    text = re.sub(r'[`*]', '', heading.strip().lower())
    text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', text)
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def anchors(path: Path):
    found, fenced = set(), False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and line.startswith('#'):
            found.add(github_anchor(line.lstrip('#')))
    return found


@pytest.mark.parametrize('page', DOC_FILES)
def test_links_resolve(page):
    """Relative links point to files of the repository, and their
    ``#anchors`` to headings of the page they name."""
    path = REPO_ROOT / page
    text = re.sub(r'```.*?```', '', path.read_text(), flags=re.S)
    problems = []
    for target in re.findall(r'\]\(([^)\s]+)\)', text):
        if re.match(r'[a-z]+:', target):
            continue
        file, _, anchor = target.partition('#')
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            problems.append(f'{target}: no {linked}')
        elif anchor and linked.suffix == '.md' and \
                anchor not in anchors(linked):
            problems.append(f'{target}: no heading #{anchor} in {linked}')
    assert not problems, '\n'.join(problems)


# a path of the repository named in the text of a page
REPO_PATH = re.compile(
    r'`((?:mmboat|tools|tests|configs|requirements|docs|\.ci)/[\w./-]*)`')


@pytest.mark.parametrize('page', DOC_FILES)
def test_named_paths_exist(page):
    """Every repository path a page names in its text (``mmboat/...``,
    ``tools/...``, ``tests/...``, ``configs/...``) exists."""
    text = re.sub(r'```.*?```', '', (REPO_ROOT / page).read_text(), flags=re.S)
    missing = sorted({
        path
        for path in REPO_PATH.findall(text)
        if '...' not in path and not re.search(r'/[A-Z_]+(/|$)', path)
        and not (REPO_ROOT / path.rstrip('/')).exists()
    })
    assert not missing, f'{page} names paths that do not exist: {missing}'


# ---------------------------------------------------------------- worker
class Worker:
    """One interpreter that imports mmboat once and runs the jobs of
    :mod:`tests.docs_worker`; replaced when a job kills or hangs it."""

    def __init__(self):
        self.pool = None

    def call(self, fn, *args, timeout=600):
        if self.pool is None:
            self.pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context('spawn'),
                initializer=docs_worker.init_worker)
        future = self.pool.submit(fn, *args)
        try:
            return future.result(timeout=timeout)
        except (concurrent.futures.TimeoutError,
                concurrent.futures.process.BrokenProcessPool):
            self.close()
            raise

    def close(self):
        if self.pool is not None:
            for process in list(self.pool._processes.values()):
                process.kill()
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None


@pytest.fixture(scope='module')
def worker():
    w = Worker()
    yield w
    w.close()


@pytest.fixture(scope='module')
def workspace(tmp_path_factory, worker):
    """The scratch copy of the repository, with the tiny-shapes data."""
    ws = tmp_path_factory.mktemp('docs')
    for name in LINKED:
        if (REPO_ROOT / name).exists():
            (ws / name).symlink_to(REPO_ROOT / name)
    for name in OWN:
        (ws / name).mkdir()
    # the data: written by the docs' own command when they have it
    writer = [
        b for b in TESTED if b.mode == 'run'
        and b.first_line.endswith('tools/misc/make_tiny_datasets.py')
    ]
    if writer:
        DATA_WRITTEN[writer[0].id] = run_block(writer[0], ws, worker)
    else:
        ok, out = worker.call(docs_worker.make_data,
                              str(ws / 'data' / 'tiny_shapes'))
        assert ok, out
    stubs = ws / '.doc-test-stubs'
    stubs.mkdir()
    for name in ('python', 'srun'):
        stub = stubs / name
        stub.write_text(f'#!{sys.executable}\nimport json, os, sys\n'
                        "with open(os.environ['DOC_TEST_CALLS'], 'a') as f:\n"
                        '    f.write(json.dumps(sys.argv) + "\\n")\n')
        stub.chmod(0o755)
    return ws


def shell_env(ws: Path) -> dict:
    env = dict(
        os.environ,
        OMP_NUM_THREADS='1',
        PYTHONDONTWRITEBYTECODE='1',
        MPLBACKEND='Agg',
        PATH=os.pathsep.join([str(ws / '.venv' / 'bin'), os.environ['PATH']]))
    env.pop('PYTHON', None)
    return env


# --------------------------------------------------------- shell parsing
def logical_lines(text: str) -> List[str]:
    """The lines of a shell block with continuations joined."""
    lines, current = [], ''
    for line in text.splitlines():
        if line.rstrip().endswith('\\'):
            current += line.rstrip()[:-1] + ' '
        else:
            lines.append(current + line)
            current = ''
    return [line for line in lines if line.strip()]


def commands(text: str) -> List[List[str]]:
    """The simple commands of a shell block, as tokens: comments dropped,
    ``;`` / ``&&`` / ``||`` split, ``VAR=value`` commands expanded into
    later commands, loop keywords dropped."""
    variables, found = {}, []

    def end(command):
        if len(command) == 1 and re.match(r'^[A-Za-z_]\w*=', command[0]):
            name, _, value = command[0].partition('=')
            variables[name] = value
        elif command and command[0] not in ('for', 'while', 'if'):
            found.append(command)

    for line in logical_lines(text):
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            tokens = line.split()
        command = []
        for token in tokens:
            if token in (';', '&&', '||', 'do', 'done', 'then', 'fi'):
                end(command)
                command = []
                continue
            for name, value in variables.items():
                token = token.replace('${%s}' % name, value)
                token = re.sub(r'\$%s\b' % name, value, token)
            command.append(token)
        end(command)
    return found


def split_env(command: List[str]):
    """``(leading VAR=value assignments, the rest)``."""
    k = 0
    while k < len(command) and re.match(r'^[A-Z_][A-Z0-9_]*=', command[k]):
        k += 1
    return command[:k], command[k:]


def script_of(command: List[str]) -> Optional[str]:
    """The Python script a command runs, relative to the scratch copy or
    absolute: a ``*.py`` argument of a python interpreter, or the
    library tool that ``mim train|test PACKAGE`` runs."""
    _, rest = split_env(command)
    if not rest:
        return None
    program = os.path.basename(rest[0])
    if program.startswith('python'):
        return next((t for t in rest[1:] if t.endswith('.py')), None)
    if program == 'mim' and len(rest) > 2 and rest[1] in ('train', 'test'):
        package = rest[2]
        if package == 'mmboat':
            return f'tools/{rest[1]}.py'
        return str(SITE / package / '.mim' / 'tools' / f'{rest[1]}.py')
    return None


def options(command: List[str]) -> List[str]:
    """The ``--options`` a command gives (brackets and values dropped)."""
    found = []
    for token in command:
        token = token.strip('[]')
        if token.startswith('--'):
            found.append(token.split('=')[0])
    return found


def config_paths(command: List[str]) -> List[str]:
    return [
        t.strip('[]') for t in command
        if re.fullmatch(r'configs/[\w./-]+\.py', t.strip('[]'))
    ]


# ----------------------------------------------------------- stand-ins
def config_by_name(name: str) -> Optional[Path]:
    found = sorted((REPO_ROOT / 'configs').glob(f'**/{name}.py'))
    return found[0] if found else None


def stand_ins(text: str):
    """``(path, config, with_training_state)`` of the checkpoints a block
    names that a config of the repository would make."""
    found = []
    for match in re.finditer(
            r'work_dirs/(?:quick_start/)?([\w.-]+)/(?:epoch|iter)_\d+\.pth',
            text):
        config = config_by_name(match.group(1))
        if config is not None:
            found.append((match.group(0), config, True))
    for match in re.finditer(
            r'checkpoints/boat-(swin|cswin)-([tsb])_in1k_mmboat\.pth', text):
        fam, size = match.groups()
        config = config_by_name(f'boat-{fam}-{size}_16xb64_in1k')
        found.append((match.group(0), config, False))
    return found


def write_stand_ins(block: Block, ws: Path, worker: Worker):
    for path, config, training in stand_ins(block.text):
        if not (ws / path).exists():
            ok, out = worker.call(docs_worker.write_stand_in, str(config),
                                  str(ws / path), training)
            assert ok, f'stand-in {path}:\n{out}'


# ---------------------------------------------------------------- modes
def python_commands(text: str):
    """``[(script, args)]`` when every command of a shell block is
    ``python SCRIPT ARGS`` (no variables, redirections or pipes), which the
    worker then runs itself; else None."""
    found = []
    for line in logical_lines(text):
        if re.search(r'[$|<>`&;]', line.split('#')[0]):
            return None
        tokens = shlex.split(line, comments=True)
        if not tokens:
            continue
        if tokens[0] not in ('python', '.venv/bin/python') or \
                len(tokens) < 2 or not tokens[1].endswith('.py'):
            return None
        found.append((tokens[1], tokens[2:]))
    return found or None


def run_block(block: Block, ws: Path, worker: Worker) -> str:
    write_stand_ins(block, ws, worker)
    timeout = TIMEOUT[block.mode]
    if block.language in ('python', 'py'):
        ok, out = worker.call(
            docs_worker.run_python,
            block.text,
            str(REPO_ROOT / block.page) + f':{block.line}',
            str(ws),
            timeout=timeout)
        assert ok, f'{block.id}:\n{block.text}\n{out[-6000:]}'
        return out
    scripts = python_commands(block.text)
    if scripts:
        outs = []
        for script, args in scripts:
            ok, out = worker.call(
                docs_worker.run_script,
                str(ws / script),
                args,
                str(ws),
                timeout=timeout)
            assert ok, f'{block.id}: {script} {args}\n{out[-6000:]}'
            outs.append(out)
        return ''.join(outs)
    proc = subprocess.run(['bash', '-e', '-o', 'pipefail', '-c', block.text],
                          cwd=ws,
                          env=shell_env(ws),
                          capture_output=True,
                          text=True,
                          timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, \
        f'{block.id}: exit {proc.returncode}\n{block.text}\n{out[-6000:]}'
    return out


def check_output(block: Block, out: str):
    """The ``output`` text block after ``block``, if any, is in ``out``."""
    blocks = read_blocks(block.page)
    after = blocks[blocks.index(block) + 1:][:1]
    if not after or after[0].mode != 'output':
        return
    missing = [
        line.strip() for line in after[0].text.splitlines()
        if line.strip() and line.strip() != '...' and line.strip() not in out
    ]
    assert not missing, f'{after[0].id}: not printed: {missing}\n{out[-3000:]}'


def check_config(block: Block, ws: Path, worker: Worker):
    first = block.text.splitlines()[0].strip()
    if re.fullmatch(r'#\s*[\w./-]+\.py', first):
        path = ws / first.lstrip('#').strip()
    else:
        path = ws / '.doc-test-configs' / (
            re.sub(r'\W', '_', block.id) + '.py')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(block.text)
    ok, out = worker.call(docs_worker.check_config, str(path), str(ws))
    assert ok, f'{block.id}:\n{block.text}\n{out[-6000:]}'


_MIM_HELP = {}


def mim_help(command: List[str], ws: Path) -> str:
    """``mim SUBCOMMAND --help`` for a mim command (its own options), else
    ''."""
    _, rest = split_env(command)
    if not rest or os.path.basename(rest[0]) != 'mim':
        return ''
    if rest[1] not in _MIM_HELP:
        proc = subprocess.run(
            [str(ws / '.venv' / 'bin' / 'mim'), rest[1], '--help'],
            cwd=ws,
            env=shell_env(ws),
            capture_output=True,
            text=True,
            timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        _MIM_HELP[rest[1]] = proc.stdout
    return _MIM_HELP[rest[1]]


def check_help(block: Block, ws: Path, worker: Worker):
    found = commands(block.text)
    assert found, f'{block.id}: no command'
    for command in found:
        script = script_of(command)
        assert script, f'{block.id}: no Python script in {command}'
        path = Path(script) if os.path.isabs(script) else ws / script
        assert path.is_file(), f'{block.id}: no {script}'
        ok, text = worker.call(docs_worker.script_help, str(path), str(ws))
        assert ok and 'usage:' in text, f'{block.id}: {script} --help\n{text}'
        text += mim_help(command, ws)
        unknown = [
            o for o in options(command)
            if not re.search(re.escape(o) + r'(?![\w-])', text)
        ]
        assert not unknown, \
            f'{block.id}: {script} has no {unknown}:\n{text}'
        for config in config_paths(command):
            assert (REPO_ROOT / config).is_file(), f'{block.id}: no {config}'


def check_dry_run(block: Block, ws: Path, worker: Worker):
    # the scripts check that the files they are given exist
    write_stand_ins(block, ws, worker)
    calls = ws / '.doc-test-calls'
    calls.write_text('')
    env = shell_env(ws)
    env['PATH'] = os.pathsep.join([str(ws / '.doc-test-stubs'), env['PATH']])
    env['DOC_TEST_CALLS'] = str(calls)
    proc = subprocess.run(['bash', '-e', '-o', 'pipefail', '-c', block.text],
                          cwd=ws,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'{block.id}: exit {proc.returncode}\n{out}'
    launches = [
        c for c in commands(block.text) if any(
            re.match(r'(.*/)?tools/(dist|slurm)_(train|test)\.sh$', t)
            for t in c)
    ]
    records = [json.loads(line) for line in calls.read_text().splitlines()]
    assert len(records) == len(launches) > 0, (block.id, records, out)
    for command, argv in zip(launches, records):
        script = next(t for t in command if t.endswith('.sh'))
        mode = 'train' if script.endswith('_train.sh') else 'test'
        if '/dist_' in f'/{script}':
            assert argv[1:3] == ['-m', 'torch.distributed.run'], argv
            nproc = next(a for a in argv if a.startswith('--nproc_per_node='))
            assert int(nproc.split('=')[1]) > 0, argv
            k = next(i for i, a in enumerate(argv) if a.endswith('.py'))
            launcher = 'pytorch'
        else:
            assert os.path.basename(argv[0]) == 'srun', argv
            k = argv.index('-u') + 1
            launcher = 'slurm'
        tool, args = argv[k], argv[k + 1:]
        assert os.path.basename(tool) == f'{mode}.py', argv
        ok, parsed = worker.call(docs_worker.parse_tool_args, str(ws / tool),
                                 args, str(ws))
        assert ok, f'{block.id}: {tool} {args}\n{parsed}'
        assert f"('launcher', '{launcher}')" in parsed, parsed
        for config in config_paths(args):
            assert (REPO_ROOT / config).is_file(), f'{block.id}: no {config}'


def param(block: Block):
    marks = [pytest.mark.slow] if block.mode == 'slow' else []
    return pytest.param(block, id=f'{block.id}-{block.mode}', marks=marks)


@pytest.mark.parametrize('block', [param(b) for b in TESTED])
def test_doc_block(block, workspace, worker):
    if block.id in DATA_WRITTEN:  # run by the workspace fixture
        check_output(block, DATA_WRITTEN[block.id])
        assert (workspace / 'data' / 'tiny_shapes' / 'coco').is_dir()
    elif block.mode in ('run', 'slow'):
        check_output(block, run_block(block, workspace, worker))
    elif block.mode == 'config':
        check_config(block, workspace, worker)
    elif block.mode == 'help':
        check_help(block, workspace, worker)
    else:
        check_dry_run(block, workspace, worker)


def test_backbone_swap_needs_delete(workspace, worker):
    """What configs_and_mim.md says of its first snippet: without
    ``_delete_=True`` the BOAT backbone gets mmdet's Swin keys and the
    model does not build."""
    block = next(b for b in BLOCKS if b.page == 'docs/configs_and_mim.md'
                 and b.mode == 'config' and 'mmdet::swin/' in b.text)
    assert '_delete_=True' in block.text
    path = workspace / '.doc-test-configs' / 'without_delete.py'
    path.parent.mkdir(exist_ok=True)
    path.write_text(re.sub(r'\n\s*_delete_=True,[^\n]*', '', block.text))
    failed, message = worker.call(docs_worker.build_fails, str(path),
                                  str(workspace))
    assert failed and 'TypeError' in message, message
