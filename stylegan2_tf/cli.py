"""What the command-line tools share: the one error report, and oneDNN on before TensorFlow loads."""

import os
import sys

from .errors import UserError


def prefer_onednn_kernels():
    """Turn TensorFlow's oneDNN CPU kernels on unless TF_ENABLE_ONEDNN_OPTS already says otherwise.

    TensorFlow turns them on by default only on AVX-512-class CPUs. On an AVX2-only CPU they ran the
    float32 convolutions faster too (training steps 1.2-1.4x, generation at 256² config F 1.2x:
    benchmarks/README.md). Must run before TensorFlow is imported; the programs call it first thing."""
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


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
