"""What ``--help`` shows a newcomer at COLUMNS=80: every line within 80 columns, the exit status
apart from the examples, ``mnv3 --help`` led by ``predict`` with an example and a pointer to the
docs, ``-V``, and ``-q``/``-v`` after the command as well as before it. In-process, via click's runner."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from mnv3cli import __version__
from mnv3cli.cli.app import cli

COMMANDS = cli.list_commands(click.Context(cli))


def run(*args: str):
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "80", "MNV3_OFFLINE": "1"})


def help_text(*args: str) -> str:
    result = run(*args, "--help")
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("args", [(), *((name,) for name in COMMANDS)], ids=lambda a: " ".join(a) or "mnv3")
def test_every_help_fits_80_columns(args):
    text = help_text(*args)
    too_wide = [line for line in text.splitlines() if len(line) > 80]
    assert not too_wide, "\n".join(too_wide)


@pytest.mark.parametrize("name", COMMANDS)
def test_exit_status_and_notes_stand_apart_from_the_examples(name):
    """An example block (Click's ``\\b``) ends with a blank line, so the paragraph after it is
    filled as a paragraph, not glued to the last example."""
    lines = help_text(name).splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("Exit status", "Needs the", "Ctrl-C", "Use images")):
            assert lines[i - 1].strip() == "", (name, line)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_is_described(name):
    command = cli.get_command(click.Context(cli), name)
    bare = [p.opts for p in command.params if isinstance(p, click.Option) and not p.help]
    assert not bare


def test_mnv3_help_leads_with_predict_an_example_and_the_docs():
    text = help_text()
    listed = [line.split()[0] for line in text.split("Commands:", 1)[1].splitlines() if line.startswith("  ")]
    assert listed[0] == "predict" and listed[:3] == ["predict", "evaluate", "train"]
    assert sorted(set(listed) - {"Documentation:"}) == sorted(COMMANDS)
    assert "mnv3 predict examples/" in text and "docs/" in text
    assert "OpenVINO" in text  # export's line names every format it writes


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version_short_and_long(flag):
    result = run(flag)
    assert result.exit_code == 0 and result.stdout.strip() == f"mnv3, version {__version__}"


def test_quiet_and_verbose_work_after_the_command(tmp_path):
    """``-q`` after the command hides notes as before it; ``-v`` after it shows the traceback."""
    for args in (["-q", "predict", "x.jpg", "-m", "tiny"], ["predict", "x.jpg", "-m", "tiny", "-q"]):
        result = run(*args)
        assert result.exit_code == 2 and "unknown model 'tiny'" in result.stderr
        assert "Traceback" not in result.stderr
    for args in (["-v", "predict", "x.jpg", "-m", "tiny"], ["predict", "x.jpg", "-m", "tiny", "-v"]):
        result = run(*args)
        assert result.exit_code == 2 and "Traceback" in result.stderr, args


def test_quiet_after_the_command_hides_notes_not_results():
    loud = run("models", "--json")
    quiet = run("models", "--json", "-q")
    assert quiet.exit_code == 0 and quiet.stdout == loud.stdout and quiet.stdout.strip()


@pytest.mark.parametrize("page", ["README.md", "docs/index.md"])
def test_the_command_tables_list_every_command(page):
    from helpers import ROOT

    text = (ROOT / page).read_text(encoding="utf-8")
    assert not [name for name in COMMANDS if f"[`mnv3 {name}`](" not in text]
    if page == "docs/index.md":  # and its list of command pages
        listed = text.split("- Commands:", 1)[1].split("\n- ", 1)[0]
        assert not [name for name in COMMANDS if f"(commands/{name}.md)" not in listed]


def _usage(name: str) -> str:
    from helpers import ROOT

    page = (ROOT / "docs" / "commands" / f"{name}.md").read_text(encoding="utf-8")
    return page.split("```text\n", 1)[1].split("```", 1)[0] if "```text\n" in page else ""


@pytest.mark.parametrize("name", [n for n in COMMANDS if n != "models"])
def test_usage_lines_in_the_docs_name_values_as_help_does(name):
    """``-m NAME`` in the page where ``--help`` says ``-m, --model NAME``; every option the page
    shows exists; the argument is spelled as in the usage line of ``--help``."""
    ctx = click.Context(cli, info_name="mnv3")
    command = cli.get_command(ctx, name)
    by_flag = {opt: p for p in command.params if isinstance(p, click.Option) for opt in p.opts + p.secondary_opts}
    usage = _usage(name)
    assert usage, f"docs/commands/{name}.md starts with no usage block"
    problems = []
    for flag, value in re.findall(
        r"(?<![\w-])(--?[a-zA-Z][\w-]*)(?: ([A-Z][A-Z_]*(?:[=|][A-Z_]+)*(?:\[[^\]]*\])?))?", usage
    ):
        param = by_flag.get(flag)
        if param is None:
            problems.append(f"{flag}: not an option of mnv3 {name}")
        elif value and param.metavar and value != param.metavar.strip("[]"):
            problems.append(f"{flag} {value}: --help says {param.metavar}")
    arguments = [
        re.sub(r"[\[\].]", "", p.metavar or p.name.upper()) for p in command.params if isinstance(p, click.Argument)
    ]
    first = re.match(rf"mnv3 {name} ([A-Z]+)", usage)
    if arguments:
        assert first and first.group(1) in arguments, (usage.splitlines()[0], arguments)
    assert not problems, "\n".join(problems)


def test_train_help_leads_with_the_options_most_runs_use():
    lines = help_text("train").split("Options:", 1)[1].splitlines()
    options = [line.split()[0].rstrip(",") for line in lines if line.startswith("  -")]
    assert options[:5] == ["-w", "-m", "-e", "-b", "--lr"]
