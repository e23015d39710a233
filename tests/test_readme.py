"""Every `python -m ablation` command the README shows parses as written (options renamed or removed would
leave the manual wrong)."""

import re
import shlex
from pathlib import Path

import pytest

from ablation.cli import build_parser

README = Path(__file__).resolve().parent.parent / "README.md"


def commands():
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("python -m ablation ") and not re.search(r"[\[|]|\.\.\.", line)]


def test_the_readme_shows_the_main_commands():
    shown = {shlex.split(line)[3] for line in commands()}
    assert {"run", "compare", "report", "history", "power", "merge", "speed", "list"} <= shown


@pytest.mark.parametrize("line", commands())
def test_each_readme_command_parses(line):
    args = build_parser().parse_args(shlex.split(line)[3:])
    assert args.command == shlex.split(line)[3]
