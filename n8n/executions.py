"""n8n's execution ids: the one reader every path uses.

An id reaches the app in a webhook's answer (`executionId` / `execution_id`),
in a streamed item that announces it, and in a callback's `execution_id`; it
goes out in the public API's paths (`/executions/{id}`, `…/stop`). n8n's ids
are decimal numbers; anything that is not at most MAX_LENGTH characters of
letters, digits, `_` and `-` is ignored (never stored, never put in a URL).
"""

import re

MAX_LENGTH = 64
_VALID = re.compile(rf"[0-9A-Za-z_-]{{1,{MAX_LENGTH}}}")
KEYS = ("executionId", "execution_id")


def execution_id(value) -> str:
    """`value` as an execution id (a string or an integer), or "" when it is not one."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return ""
    text = str(value)
    return text if _VALID.fullmatch(text) else ""


def execution_id_of(data) -> str:
    """The execution id a JSON object names (`executionId` or `execution_id`), else ""."""
    if isinstance(data, dict):
        for key in KEYS:
            found = execution_id(data.get(key))
            if found:
                return found
    return ""
