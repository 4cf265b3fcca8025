"""Console examples in markdown pages: find them, run them, compare what they print with the page.

Why: the README drifted from the code for months because nothing checked it. Every ```console
block in README.md and docs/ is a transcript: lines starting with ``$ `` are commands, the lines
after a command are what it prints (stdout and stderr merged, in order, as on a terminal). A block
preceded by the line ``<!-- no-test -->`` is shown but not run (network, long training).

Matching, line by line, after trailing spaces are stripped:
- a line that is exactly ``...`` stands for any number of lines (also none);
- ``...`` inside a line stands for any text on that line;
- values that change from run to run (timings, throughput, float noise of an export check) are
  normalised on both sides by the few regexes in ``VOLATILE``; every other character must match.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

SKIP_MARK = "<!-- no-test -->"
SEPARATOR = "\x1e"  # printed between commands so one shell run can be split per command

# (pattern, replacement), applied to expected and actual lines alike: only run-dependent values.
VOLATILE = [
    (re.compile(r'("(?:seconds|images_per_sec|images_per_s)": )-?[0-9.e+-]+'), r"\1<N>"),
    (re.compile(r"(│ (?:wall time|images/s) +│) *[0-9.,]+(?: m?s)? *│"), r"\1 <N> │"),
    (re.compile(r"(largest logit difference from PyTorch on .*?: )[0-9.e+-]+"), r"\1<N>"),
]


@dataclass
class Command:
    line: int  # 1-based line of the ``$ `` in the page
    text: str
    expected: list[str] = field(default_factory=list)


@dataclass
class Block:
    page: Path
    line: int
    commands: list[Command]
    skip: bool


def parse(page: Path) -> list[Block]:
    """The ```console blocks of a page, in order (indented ones inside lists too)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    previous = ""
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped.startswith("```console"):
            indent = len(lines[i]) - len(lines[i].lstrip())
            start, commands = i + 1, []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                text = lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i]
                if text.startswith("$ "):
                    commands.append(Command(i + 1, text[2:]))
                elif not commands:
                    raise ValueError(f"{page}:{i + 1}: console block output before any '$ ' command")
                else:
                    commands[-1].expected.append(text)
                i += 1
            blocks.append(Block(page, start, commands, skip=previous == SKIP_MARK))
        if stripped:
            previous = stripped
        i += 1
    return blocks


def normalise(line: str) -> str:
    line = line.rstrip()
    for pattern, replacement in VOLATILE:
        line = pattern.sub(replacement, line)
    return line


def _pattern(expected: list[str]) -> re.Pattern:
    parts = []
    for line in map(normalise, expected):
        if line == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(r"[^\n]*?".join(map(re.escape, line.split("..."))) + r"\n")
    return re.compile("".join(parts))


def matches(expected: list[str], actual: str) -> bool:
    lines = [normalise(line) for line in actual.splitlines()]
    text = "".join(line + "\n" for line in lines)
    return _pattern(expected).fullmatch(text) is not None


def script(block: Block) -> str:
    """One bash script for the block: ``mnv3`` is ``python -m mnv3cli``, and ``python`` the
    interpreter running the tests (whatever PATH says); stderr joins stdout."""
    body = ['python() { "$MNV3_PYTHON" "$@"; }', 'mnv3() { python -m mnv3cli "$@"; }', "exec 2>&1"]
    for command in block.commands:
        # keep $? across the separator, so that ``echo $?`` shows the previous command's status
        body += [f"__status=$?; printf '{SEPARATOR}\\n'; (exit $__status)", command.text]
    return "\n".join(body) + "\n"


def split_output(output: str, block: Block) -> list[str]:
    chunks = output.split(SEPARATOR + "\n")[1:]
    if len(chunks) != len(block.commands):
        raise AssertionError(f"expected {len(block.commands)} outputs, got {len(chunks)}:\n{output}")
    return chunks


def mismatch(command: Command, actual: str, page: str) -> str:
    diff = difflib.unified_diff(
        [normalise(x) for x in command.expected],
        [normalise(x) for x in actual.splitlines()],
        "page",
        "actual",
        lineterm="",
        n=2,
    )
    return f"{page}:{command.line}: $ {command.text}\n" + "\n".join(diff)
