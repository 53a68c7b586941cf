"""What the command-line tools share: running a main function with the one error report."""

import sys

from .errors import UserError


def run(main, *args, **kwargs):
    """Call `main(*args, **kwargs)`; a `UserError` ends the process with one `error: ...` line
    on stderr and exit status 1."""
    try:
        return main(*args, **kwargs)
    except UserError as e:
        sys.exit(f"error: {e}")


def run_command(argv, commands, dispatch):
    """The absl main of a tool with subcommands: `argv` must be [program, one of `commands`];
    then `run(dispatch, command)`."""
    if len(argv) != 2 or argv[1] not in commands:
        got = " ".join(argv[1:]) or "nothing"
        sys.exit(f"error: expected one command of {', '.join(commands)}; got {got}")
    run(dispatch, argv[1])
