"""Every `python -m ablation` command the README and the CI workflows show parses as written (options renamed or
removed would leave the manual wrong and the workflows broken), and the README's example output is the output."""

import re
import shlex
from pathlib import Path

import pytest

from ablation.cli import build_parser, main
from ablation.results import format_results, read_results

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def commands():
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("python -m ablation ") and not re.search(r"[\[|]|\.\.\.", line)]


def test_the_readme_shows_the_main_commands():
    shown = {shlex.split(line)[3] for line in commands()}
    assert {"run", "compare", "report", "history", "power", "merge", "speed", "list"} <= shown


def workflow_commands():
    """The `python -m ablation` commands of the workflows' run steps: a folded block (`run: >-`) joined into one
    line, expressions (`${{ ... }}`) as 1, and the shell's redirections and `||` cut off."""
    found = []
    for path in WORKFLOWS:
        lines = path.read_text().splitlines()
        indent = [len(line) - len(line.lstrip()) if line.strip() else 1000 for line in lines]
        for i, line in enumerate(lines):
            if line.strip().endswith("run: >-"):
                end = i + 1
                while end < len(lines) and indent[end] > indent[i]:
                    end += 1
                lines[i:end] = [" ".join(following.strip() for following in lines[i + 1:end])] + [""] * (end - i - 1)
        for line in lines:
            command = re.sub(r"\$\{\{[^}]*\}\}", "1", line.strip().removeprefix("- run: ").removeprefix("run: "))
            if command.startswith("python -m ablation "):
                words = shlex.split(command)
                cut = next((i for i, word in enumerate(words) if word in ("||", ">>", ">", "|", "&&")), len(words))
                found.append(pytest.param(words[:cut], id=f"{path.name}: {' '.join(words[3:5])}"))
    return found


def test_the_workflows_run_the_nightly_shards_their_merge_and_judge():
    shown = {tuple(words[3:4]) for words in (p.values[0] for p in workflow_commands())}
    assert {("run",), ("merge",), ("report",), ("compare",), ("power",), ("history",)} <= shown
    assert any(words[3:4] == ["history"] and "--alert" in words for words in (p.values[0] for p in workflow_commands()))
    assert any("--same-training" in p.values[0] for p in workflow_commands())  # the pull request's exact check


@pytest.mark.parametrize("line", commands())
def test_each_readme_command_parses(line):
    args = build_parser().parse_args(shlex.split(line)[3:])
    assert args.command == shlex.split(line)[3]


@pytest.mark.parametrize("words", workflow_commands())
def test_each_workflow_command_parses(words):
    assert build_parser().parse_args(words[3:]).command == words[3]


def example_after(heading: str) -> list[str]:
    """The lines of the README's first plain code block after ``heading``."""
    text = README.read_text()
    block = re.search(r"```\n(.*?)```", text[text.index(heading):], re.S)
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_readmes_example_output_is_what_the_commands_print_for_the_recorded_runs(capsys):
    """The README's examples of `run`'s tables and of `compare` are the output for the recorded H200 runs they
    came from, line by line ("..." ends an abridged line)."""
    recorded = ROOT / "bench" / "recorded"
    tables = format_results(read_results(recorded / "h200-bench-1018f58.json"), "table").splitlines()
    for line in example_after("`run` prints one table per study"):
        assert line in tables
    main(["compare", str(recorded / "h200-bench.json"), str(recorded / "h200-bench-graphs.json")])
    compared = capsys.readouterr().out.splitlines()
    for line in example_after("`compare` of two same-seed runs"):
        assert any(shown.startswith(line.removesuffix("...")) for shown in compared), line
