"""Inputs that make naive Markdown renderers slow, at a given size.

Shared by tests/chat/test_render_bounds.py (correctness: no error, bounded output;
at the largest reply's size, time) and `make bench` (the render budget).
"""


def _repeat(unit, size):
    return (unit * (size // len(unit) + 1))[:size]


def _deep_list(size):
    lines, i = [], 0
    while sum(map(len, lines)) < size:
        lines.append("  " * i + f"- item {i}\n")
        i += 1
    return "".join(lines)


def _deep_quote(size):
    lines, i = [], 0
    while sum(map(len, lines)) < size:
        lines.append("> " * i + f"quote {i}\n")
        i += 1
    return "".join(lines)


def cases(size) -> dict[str, str]:
    return {
        "open brackets": "[" * size,
        "brackets and parens": _repeat("[(", size),
        "empty links": _repeat("[](", size),
        "unclosed <a ": _repeat("<a ", size),
        "unclosed tags": _repeat("<div><span>", size),
        "html comments": _repeat("<!--", size),
        "deep list": _deep_list(size),
        "list markers on one line": _repeat("- ", size),
        "deep quote": _deep_quote(size),
        "quote markers": ">" * size,
        "emphasis run *a": _repeat("*a", size),
        "emphasis run _a": _repeat("_a", size),
        "mixed delimiters": _repeat("*_~", size),
        "nested strong": "**" * (size // 4) + "x" + "**" * (size // 4),
        "backticks": "`" * size,
        "backtick runs": "".join("`" * i + "x" for i in range(1, 200))[:size],
        "dollars": _repeat("$a", size),
        "formulas": _repeat("$x^2$ ", size),
        "table rows": "|a|b|\n|-|-|\n" + _repeat("|x|y|\n", size),
        "footnote refs": _repeat("[^1]", size) + "\n\n[^1]: n\n",
        "bare urls": _repeat("http://a.example/ ", size),
        "bare urls per line": _repeat("http://x.io\n", size),
        "www per line": _repeat("www.x.io\n", size),
        "bare domains per line": _repeat("x.io\n", size),
        "bare domains": _repeat("x.io ", size),
        "emails per line": _repeat("a@x.io\n", size),
        "pipe rows": _repeat("|a|\n", size),
        "dollar formulas": _repeat("$x$", size),
        "reference definitions": _repeat("[ref]: http://x.io/ 'title'\n", size) + "\n[ref]\n",
        "long reference definition": _repeat("[", 999) + "]: http://x.io/" + "a" * size,
        "entities": _repeat("&amp;", size),
        "less-than signs": "<" * size,
        "code": "```python\n" + _repeat("def f(x): return [x, {x: (x,)}]\n", size) + "```\n",
    }
