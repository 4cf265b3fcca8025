"""One name per idea: every command's options against the vocabulary table of docs/conventions.md.

The table (section "One name per idea") is the one list of shared names: each row is one idea,
its names (flags, and argument metavars in capitals) and its value names. This test reads the
table and the Click parameters of every command (``mnv3 --help``'s list, plugins included) and
fails on

- one name for two ideas: a name in two rows; a short flag with two long names; an idea's own
  value name (``DATA``, ``WEIGHTS`` ...) on an option of another row;
- one idea under two names: an option with a row whose other flags it lacks (``-o`` without
  ``--output``), a value name not in its row (``-m MODEL``), a long flag shared by two commands
  without a row, an argument whose metavar is in no row, a name the table keeps out.

Adding an option: a command-specific one needs nothing; one that another command has too needs
its row (and may only reuse a row's names for that row's idea).
"""

from __future__ import annotations

import re
from collections import defaultdict

import click
import pytest

from helpers import ROOT
from mnv3cli.cli.app import cli

# kinds of value, not ideas: any option may use them
KINDS = {"N", "FLOAT", "FILE", "DIR", "PATH", "SECONDS", "P", "ADDRESS", "PORT", "URI", "[URI]", "[N]"}


def _vocabulary() -> tuple[list[tuple[set[str], set[str]]], set[str]]:
    """(rows of (names, value names), names kept out) from docs/conventions.md."""
    text = (ROOT / "docs" / "conventions.md").read_text(encoding="utf-8")
    section = text.split("## One name per idea", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        rows.append((set(re.findall(r"`([^`]+)`", cells[0])), set(re.findall(r"`([^`]+)`", cells[1]))))
    kept_out = section.split("Names kept out on purpose:", 1)[1].split("(", 1)[0]
    return rows, set(re.findall(r"`(--[a-z_-]+)`", kept_out))


ROWS, KEPT_OUT = _vocabulary()


def _commands() -> dict[str, click.Command]:
    ctx = click.Context(cli)
    return {name: cli.get_command(ctx, name) for name in cli.list_commands(ctx)}


def _parameters():
    """(command, parameter) for every parameter of every command, and of the group itself."""
    yield "mnv3", next(p for p in cli.params if "--device" in p.opts)
    for name, command in _commands().items():
        for param in command.params:
            yield name, param


def _names(param: click.Parameter) -> set[str]:
    if isinstance(param, click.Argument):
        return {re.sub(r"[\[\].]", "", param.metavar or param.name.upper())}
    return set(param.opts) | set(param.secondary_opts)


def _value(param: click.Parameter) -> str | None:
    """The value name the help shows, None for flags and choices (their choices are shown)."""
    if isinstance(param, click.Argument) or getattr(param, "is_flag", False) or getattr(param, "count", False):
        return None
    if isinstance(param.type, click.Choice):
        return None
    return param.metavar


def _row_of(name: str) -> int | None:
    found = [i for i, (names, _) in enumerate(ROWS) if name in names]
    return found[0] if found else None


def test_the_table_is_read_and_no_name_is_in_two_rows():
    assert len(ROWS) >= 20 and {"--output", "-o"} <= ROWS[_row_of("--output")][0]
    counts = defaultdict(int)
    for names, _ in ROWS:
        for name in names:
            counts[name] += 1
    assert not [n for n, c in counts.items() if c > 1], "a name in two rows of the vocabulary"
    assert not KEPT_OUT & set(counts)


def test_every_option_agrees_with_its_row():
    problems = []
    for command, param in _parameters():
        names = _names(param)
        rows = {_row_of(n) for n in names} - {None}
        if len(rows) > 1:
            problems.append(f"{command} {sorted(names)}: names from two rows")
            continue
        if not rows:
            continue
        row_names, row_values = ROWS[rows.pop()]
        flags = {n for n in row_names if n.startswith("-")}
        if isinstance(param, click.Option) and not names <= flags:
            problems.append(f"{command} {sorted(names)}: not all in its row {sorted(flags)}")
        if isinstance(param, click.Option) and (flags - names) and not _paired(flags, names):
            problems.append(f"{command} {sorted(names)}: lacks {sorted(flags - names)} of its row")
        value = _value(param)
        if value is not None and value not in row_values:
            problems.append(f"{command} {sorted(names)} {value}: its row says {sorted(row_values)}")
    assert not problems, "\n".join(problems)


def _paired(flags: set[str], names: set[str]) -> bool:
    """A row may hold several options of one idea (``DATA``, ``--data``, ``--val``): an option
    then carries one long flag of the row (and its short one, if the row has exactly one)."""
    longs = {f for f in flags if f.startswith("--")}
    shorts = flags - longs
    return len(longs) > 1 and len(names & longs) >= 1 and (not shorts or len(longs) > 2)


def test_one_short_flag_one_long_name():
    longs_of = defaultdict(set)
    for _command, param in _parameters():
        if isinstance(param, click.Option):
            for short in (o for o in param.opts if not o.startswith("--")):
                longs_of[short] |= {o for o in param.opts if o.startswith("--")}
    assert not {s: ls for s, ls in longs_of.items() if len(ls) > 1}


def test_shared_options_have_a_row_and_idea_values_stay_in_theirs():
    users = defaultdict(set)
    problems = []
    idea_values = {v: i for i, (_, values) in enumerate(ROWS) for v in values if v not in KINDS and "[" not in v}
    for command, param in _parameters():
        names = _names(param)
        for name in names:
            users[name].add(command)
        rows = {_row_of(n) for n in names} - {None}
        value = _value(param)
        if value in idea_values and idea_values[value] not in rows:
            problems.append(f"{command} {sorted(names)} {value}: {value} is another idea's value")
        if isinstance(param, click.Argument) and not rows:
            problems.append(f"{command} argument {sorted(names)}: in no row of the vocabulary")
        if names & KEPT_OUT:
            problems.append(f"{command} {sorted(names & KEPT_OUT)}: a name the vocabulary keeps out")
    shared = {n for n, cs in users.items() if n.startswith("--") and len(cs - {"mnv3"}) > 1}
    problems += [f"{n} ({sorted(users[n])}): shared but in no row" for n in sorted(shared) if _row_of(n) is None]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]), ids=lambda p: p.name)
def test_docs_spell_torchrun_one_way(page):
    text = page.read_text(encoding="utf-8")
    if page.name == "conventions.md":
        text = text.replace("`--nproc_per_node`", "")  # its list of names kept out
    assert "--nproc_per_node" not in text


# Where one flag's range differs between commands on purpose, and why (keep this short).
RANGES_DIFFER = {
    "--resolution": "export and profile cap it at 4096 (a graph that size is refused anyway); export needs 32",
}


def _range(param: click.Parameter) -> tuple | None:
    kind = param.type
    if isinstance(kind, click.types._NumberRangeBase):
        return type(kind).__name__, kind.min, kind.max, kind.min_open, kind.max_open
    return None


def test_one_flag_takes_the_same_range_everywhere():
    """``-j 0`` cannot mean something in one command and be refused in another."""
    ranges = defaultdict(dict)
    for command, param in _parameters():
        if isinstance(param, click.Option) and _range(param) is not None:
            ranges[next(o for o in param.opts if o.startswith("--"))][command] = _range(param)
    differing = {flag: by for flag, by in ranges.items() if len(set(by.values())) > 1 and flag not in RANGES_DIFFER}
    assert not differing
