"""The watchdog process of multi-worker training (see cluster.Watchdog); run as a script:

  python watchdog_process.py PARENT_PID TIMEOUT_SECONDS DESCRIPTION

It reads lines from stdin: "beat\\t<what the parent does now>" restarts the countdown,
"log\\t<path>" names a file that also gets the error. When TIMEOUT_SECONDS pass without a
beat it writes one error line to stderr (and the log file) and kills the parent with SIGKILL:
the parent may be blocked inside TensorFlow holding the GIL, where no thread of its own and
no catchable signal would get through. End of input (the parent stopped it or exited) ends
it. Imports nothing from this package.
"""

import os
import select
import signal
import sys
import time


def main(pid, timeout, describe):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the terminal is for the parent
    what, log_path = "starting", None
    deadline = time.monotonic() + timeout
    fd = sys.stdin.fileno()
    pending = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            message = (f"error: {describe}no progress for {timeout:g} s while {what} (--collective-timeout): a worker "
                       f"is stalled, did not start or cannot be reached; stopping. The last snapshot and checkpoint "
                       f"are intact")
            sys.stderr.write(message + "\n")
            sys.stderr.flush()
            if log_path:
                try:
                    with open(log_path, "a") as f:
                        f.write(message + "\n")
                except OSError:
                    pass
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return 1
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        data = os.read(fd, 65536)
        if not data:
            return 0
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            command, _, arg = line.decode("utf-8", "replace").partition("\t")
            if command == "beat":
                deadline = time.monotonic() + timeout
                what = arg or what
            elif command == "log":
                log_path = arg or None


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]))
