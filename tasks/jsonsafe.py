"""Parse untrusted JSON into values every database and page can hold.

`json.loads` accepts things that later fail far from the request: `NaN`,
`Infinity` and `1e400` (not JSON numbers; PostgreSQL's jsonb refuses them),
`\\u0000` (PostgreSQL text and jsonb refuse NUL), lone surrogates such as
`\\ud800` (not encodable as UTF-8), and nesting deep enough to exhaust the
recursion of whatever walks the value next (templates, `json.dumps`, the
admin). `loads()` refuses each with a `JSONRejected` whose message says which,
so the webhook answers 400 instead of 500 (and a retried callback does not
fail the same way forever).
"""

import json
import math


class JSONRejected(ValueError):
    """The body is not JSON this app accepts; the message says why, in plain words."""


def _reject_constant(name):
    raise JSONRejected(f"numbers must be finite: {name} is not accepted")


def _finite_float(text):
    number = float(text)
    if not math.isfinite(number):
        raise JSONRejected(f"numbers must be finite: {text[:40]} is out of range")
    return number


def _check_string(text, where):
    if "\x00" in text:
        raise JSONRejected(f"{where} may not contain NUL characters (\\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JSONRejected(
            f"{where} may not contain lone surrogates (\\ud800-\\udfff without a pair)"
        ) from None


def check_value(value, max_depth):
    """Walk `value` without recursion; raise JSONRejected for a bad string or depth."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_string(item, "strings")
        elif isinstance(item, (dict, list)):
            if depth > max_depth:
                raise JSONRejected(f"the JSON is nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_string(key, "object keys")
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise JSONRejected("numbers must be finite")


def loads(raw, max_depth):
    """Parse `raw` (bytes or str); JSONRejected for anything the app would choke on."""
    try:
        value = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except JSONRejected:
        raise
    except RecursionError:
        # The C parser counts its own depth against the interpreter's recursion
        # limit and stops cleanly: such a body is far past max_depth anyway.
        raise JSONRejected(f"the JSON is nested deeper than {max_depth} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise JSONRejected("the body is not JSON") from None
    check_value(value, max_depth)
    return value
