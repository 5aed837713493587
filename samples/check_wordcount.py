"""Check the output of samples/wordcount.py.

    python samples/check_wordcount.py OUTPUT_PREFIX [EXPECTED_LINES]

Exits non-zero unless the files under OUTPUT_PREFIX hold EXPECTED_LINES
(default 20) lines of the form ``word: count``; prints a one-line summary.
"""

import glob
import re
import sys

LINE_RE = re.compile(r"^[a-z']+: [0-9]+$")


def main(argv):
    prefix = argv[1]
    expected = int(argv[2]) if len(argv) > 2 else 20
    paths = sorted(glob.glob(prefix + "*"))
    if not paths:
        sys.exit(f"no output files match {prefix}*")
    lines = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            lines.extend(line.rstrip("\n") for line in f if line.strip())
    bad = [line for line in lines if not LINE_RE.match(line)]
    if bad:
        sys.exit(f"malformed output lines: {bad[:5]}")
    if len(lines) != expected:
        sys.exit(f"expected {expected} lines, found {len(lines)} in {len(paths)} file(s)")
    counts = sorted((int(line.rsplit(": ", 1)[1]), line) for line in lines)
    print(f"wordcount output OK: {len(lines)} lines in {len(paths)} file(s) under {prefix}*; "
          f"most frequent: {counts[-1][1]}")


if __name__ == "__main__":
    main(sys.argv)
