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
