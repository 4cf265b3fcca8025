"""``mnv3 completion SHELL``: Click's own completion script, so users need not know its variable.

Click completes any command when run with ``_MNV3_COMPLETE=bash_source`` (``zsh_source``,
``fish_source``) in the environment; that spelling is easy to get wrong and hard to find, so this
command prints the same script. Completion itself is Click's: command names, option names and
choices (``--backend``, ``--format``), files for paths.
"""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_MNV3_COMPLETE"  # what Click derives from the program name ``mnv3``


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def command(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    \b
    bash (in ~/.bashrc): eval "$(mnv3 completion bash)"
    zsh (in ~/.zshrc):   eval "$(mnv3 completion zsh)"
    fish (once): mnv3 completion fish > ~/.config/fish/completions/mnv3.fish
    """
    completion_class = get_completion_class(shell)
    assert completion_class is not None  # SHELLS are Click's built-in ones
    root = ctx.find_root().command
    click.echo(completion_class(root, {}, "mnv3", COMPLETE_VAR).source())
