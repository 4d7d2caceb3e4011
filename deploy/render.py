"""Fill a template of deploy/ with values from the environment.

    python deploy/render.py TEMPLATE OUTPUT

Every `{{NAME}}` in TEMPLATE is replaced by the environment variable NAME; a
name that is not set stops with a message naming it, so that no half-filled
configuration is ever written. nginx's own `$variables` pass through untouched.
Standard library only: `make prod` runs it, and an operator can too.
"""

import os
import re
import sys
from pathlib import Path

PLACEHOLDER = re.compile(r"\{\{([A-Z][A-Z0-9_]*)\}\}")


def render(text: str, values) -> str:
    missing = sorted({name for name in PLACEHOLDER.findall(text) if name not in values})
    if missing:
        raise KeyError(", ".join(missing))
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def main(argv) -> int:
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    template, output = Path(argv[1]), Path(argv[2])
    try:
        text = render(template.read_text(), os.environ)
    except KeyError as exc:
        print(f"{template}: set {exc.args[0]} to fill it in", file=sys.stderr)
        return 1
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
