"""Glob patterns, the syntax every filesystem's ``match`` accepts.

They follow Beam's: ``*`` and ``?`` stay within one path component, ``**``
crosses directories, ``[abc]`` / ``[!abc]`` are character classes, and a
pattern ending in ``/`` matches every file directly in that directory.

>>> has_glob(escape_glob("out[1]*"))
True
"""
from __future__ import annotations

import re

#: The characters that start a glob construct; the text before the first one is literal.
GLOB_CHARS_RE = re.compile(r"[*?\[]")


def has_glob(pattern: str) -> bool:
    """Whether ``pattern`` contains glob characters (``*``, ``?``, ``[``).

    >>> has_glob("/data/*.txt"), has_glob("/data/a.txt")
    (True, False)
    """
    return GLOB_CHARS_RE.search(pattern) is not None


def escape_glob(text: str) -> str:
    """Quote ``text`` so that it matches only itself inside a glob pattern.

    >>> escape_glob("out[1]*")
    'out[[]1][*]'
    """
    return re.sub(r"([*?\[])", r"[\1]", text)


def glob_to_regex(pattern: str) -> str:
    """Translate a glob pattern to a regular expression for ``re.fullmatch`` on full paths.

    >>> bool(re.fullmatch(glob_to_regex("/d/*.txt"), "/d/sub/a.txt"))
    False
    >>> bool(re.fullmatch(glob_to_regex("/d/**.txt"), "/d/sub/a.txt"))
    True
    """
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            if i < n and pattern[i] == "*":
                out.append(".*")
                i += 1
            else:
                out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + 1 if i < n and pattern[i] == "!" else i
            if j < n and pattern[j] == "]":
                j += 1
            close = pattern.find("]", j)
            if close < 0:
                out.append(re.escape(c))
                continue
            body, i = pattern[i:close], close + 1
            negate = body.startswith("!")
            body = body[1:] if negate else body
            body = body.replace("\\", "\\\\").replace("[", "\\[")
            if body.startswith("^"):
                body = "\\" + body
            # A negated class must still not cross a path separator.
            out.append(f"[^/{body}]" if negate else f"[{body}]")
        else:
            out.append(re.escape(c))
    return "(?s)" + "".join(out)
