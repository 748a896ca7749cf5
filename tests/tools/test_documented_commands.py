"""Every ``python tools/...`` command of README.md, docs/*.md, the configs' comments and the tools'
``--help`` texts runs.

Each command is run in this process (the tool's ``main``) with ``--dry-run`` put right after the
script name, so its config file, options and overrides are checked without training or reading
data. Commands with a placeholder (``X.yaml``, ``<name>``, ``...``) and tools without a dry run
are run with ``--help``, which still fails on a renamed tool. Config paths a command names must
exist, whatever it is run with.
"""
import contextlib
import glob
import importlib.util
import io
import os
import re
import shlex
import sys
from typing import List, Tuple

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(REPO, "tools", "*.py")))
_COMMAND = re.compile(r"((?:[A-Z_]+=\S+\s+)?python tools/\S+\.py[^`\n#]*)")
# The names ascnet.engine.trainer.Trainer.save_checkpoint writes.
_CHECKPOINT_NAME = re.compile(r"^checkpoint_(epoch_\d{5}|iter_\d{7}|final)\.pyth$")
_PLACEHOLDER = re.compile(r"^(X|CONFIG|my|X\.pyth)\.yaml$|^configs/X\.yaml$|<|^\.\.\.$|^X\.pyth$")


def _join_continuations(text: str) -> str:
    return re.sub(r"\\\n[#\s]*", " ", text)


def commands_in_markdown(text: str) -> List[str]:
    # Inline code may wrap over two lines: join its lines (not those of ``` blocks).
    text = re.sub(r"(?<!`)`[^`]+`(?!`)", lambda m: re.sub(r"\n\s*", " ", m.group(0)), _join_continuations(text))
    return [c.strip() for c in _COMMAND.findall(text)]


def commands_in_comments(text: str) -> List[str]:
    comments = "\n".join(line.split("#", 1)[1] for line in text.splitlines() if "#" in line)
    return [c.strip() for c in _COMMAND.findall(_join_continuations(comments))]


def _doc_commands() -> List[Tuple[str, str]]:
    out = []
    for path in ["README.md", *sorted(glob.glob("docs/*.md", root_dir=REPO)), *sorted(glob.glob("projects/*/README.md", root_dir=REPO))]:
        with open(os.path.join(REPO, path), encoding="utf-8") as f:
            out += [(path, c) for c in commands_in_markdown(f.read())]
    for path in sorted(glob.glob("configs/**/*.yaml", root_dir=REPO, recursive=True)) + sorted(
        glob.glob("projects/*/configs/*.yaml", root_dir=REPO)
    ):
        with open(os.path.join(REPO, path), encoding="utf-8") as f:
            out += [(path, c) for c in commands_in_comments(f.read())]
    return out


DOC_COMMANDS = _doc_commands()


def _load_tool(name: str):
    path = os.path.join(REPO, "tools", name)
    assert os.path.isfile(path), f"tools/{name} does not exist"
    spec = importlib.util.spec_from_file_location(f"_tool_{name[:-3]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _call(name: str, argv: List[str]) -> Tuple[int, str]:
    """Run ``tools/<name>``'s main(argv) here; (exit status, stdout + stderr)."""
    module = _load_tool(name)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            code = module.main(argv)
        except SystemExit as e:
            code = e.code
    return int(code or 0), buf.getvalue()


def _has_dry_run(name: str) -> bool:
    code, text = _call(name, ["--help"])
    return code == 0 and "--dry-run" in text


def run_documented(command: str, monkeypatch) -> Tuple[str, int, str]:
    """Run one documented command; returns (how it was run, exit status, output)."""
    words = shlex.split(re.sub(r"\s\[[^\]]*\]", " ", command))  # drop "[optional ...]" groups
    while "=" in words[0]:  # VAR=value prefixes (PYTHONPATH=projects/X3D)
        var, value = words.pop(0).split("=", 1)
        if var == "PYTHONPATH":
            monkeypatch.syspath_prepend(os.path.join(REPO, value))
    assert words[0] == "python" and words[1].startswith("tools/"), command
    name, args = os.path.basename(words[1]), words[2:]
    for a in args:  # every config file a command names exists
        if a.endswith(".yaml") and not _PLACEHOLDER.search(a):
            assert os.path.isfile(os.path.join(REPO, a)), f"{a} does not exist"
        # A checkpoint file in a run's checkpoints/ folder has a name the trainer writes.
        if a.endswith(".pyth") and "checkpoints/" in a:
            assert _CHECKPOINT_NAME.match(os.path.basename(a)), f"{a}: no run writes this file name"
    if any(_PLACEHOLDER.search(a) for a in args) or not _has_dry_run(name):
        code, out = _call(name, ["--help"])
        return "--help", code, out
    code, out = _call(name, ["--dry-run"] + args)
    return "--dry-run", code, out


@pytest.fixture
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # the documented commands run from the repository root
    return monkeypatch


def test_the_commands_were_found():
    # The extraction itself can fail: every tool is documented somewhere, and the known
    # commands are seen.
    assert len(DOC_COMMANDS) > 30
    documented = {os.path.basename(c.split("python ")[1].split()[0]) for _, c in DOC_COMMANDS}
    assert {"run_net.py", "eval_retrieval.py", "eval_splits.py", "check_dataset.py"} <= documented
    assert ("README.md", "python tools/run_net.py --cfg X.yaml --dry-run") in DOC_COMMANDS
    assert any("--slurm --partition P --nodes 2 --gpus-per-node 8 --timeout-min 4320" in c for _, c in DOC_COMMANDS)


@pytest.mark.parametrize("source,command", DOC_COMMANDS, ids=[f"{s}:{c[13:60]}" for s, c in DOC_COMMANDS])
def test_documented_command_runs(source, command, in_repo):
    how, code, out = run_documented(command, in_repo)
    assert code == 0, f"{source}: `{command}` ({how}) exited {code}:\n{out[-2000:]}"
    if how == "--dry-run":
        assert "dry run" in out, out[-2000:]


@pytest.mark.parametrize("tool", TOOLS)
def test_help_examples_run(tool, in_repo):
    code, text = _call(tool, ["--help"])
    assert code == 0, text
    commands = _COMMAND.findall(_join_continuations(text))
    assert commands, f"tools/{tool} --help shows no example"
    for line in text.splitlines():  # a lost line break leaves a run of spaces in a command
        if "python tools/" in line:
            assert not re.search(r"\S {3,}\S", line.split("#")[0]), f"tools/{tool} --help: {line!r}"
    for command in commands:
        how, code, out = run_documented(command.strip(), in_repo)
        assert code == 0, f"tools/{tool} --help: `{command}` ({how}) exited {code}:\n{out[-2000:]}"


def test_a_renamed_config_fails(in_repo):
    with pytest.raises(AssertionError, match="does not exist"):
        run_documented("python tools/run_net.py --cfg configs/Kinetics/ASCNet_R3D18.yaml", in_repo)
    with pytest.raises(AssertionError, match="does not exist"):
        run_documented("python tools/test_splits.py --cfg X.yaml", in_repo)
    with pytest.raises(AssertionError, match="no run writes"):
        run_documented("python tools/export_backbone.py --checkpoint out/checkpoints/last.pyth --out x", in_repo)
    how, code, _ = run_documented("python tools/run_net.py --cfg configs/Synthetic/ASCNet_R3D18_quickstart.yaml "
                                  "NO.SUCH_KEY 1", in_repo)
    assert how == "--dry-run" and code == 2
