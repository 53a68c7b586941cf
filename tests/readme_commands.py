"""The shell commands of README.md that are tested as written.

A code block in README.md is tested when the line before its opening fence is
`<!-- tested: NAME -->`. Its commands are its lines without comments, with `\\`
continuations joined. `python tests/readme_commands.py NAME N` prints the N-th
(1-based) command of block NAME, so that CI can run it verbatim.
"""

import pathlib
import re
import sys

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
_MARK = re.compile(r"^<!-- tested: ([\w-]+) -->\s*$")


def readme_blocks(text=None):
    """{name: [command, ...]} for every marked block."""
    lines = (README.read_text() if text is None else text).splitlines()
    blocks = {}
    for i, line in enumerate(lines):
        m = _MARK.match(line)
        if not m:
            continue
        if i + 1 >= len(lines) or not lines[i + 1].startswith("```"):
            raise ValueError(f"README.md line {i + 1}: {line.strip()} is not followed by a code block")
        commands, current = [], ""
        for body in lines[i + 2:]:
            if body.startswith("```"):
                break
            body = body.split(" #", 1)[0].rstrip() if not body.lstrip().startswith("#") else ""
            if not body and not current:
                continue
            current += body.strip() if current else body
            if current.endswith("\\"):
                current = current[:-1].rstrip() + " "
                continue
            commands.append(current)
            current = ""
        blocks[m.group(1)] = commands
    return blocks


if __name__ == "__main__":
    name, nth = sys.argv[1], int(sys.argv[2])
    print(readme_blocks()[name][nth - 1])
