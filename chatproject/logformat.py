"""Log formats: plain lines for people, one JSON object per line for machines.

`LOG_FORMAT=json` (settings.LOGGING) uses python-json-logger: every record
becomes `{"time", "level", "logger", "message", …}` plus the fields the call
passed in `extra=` (task_id, execution_id, outcome, duration_ms…), so an
operator can follow one task across the web processes and the worker with
`jq 'select(.task_id == 42)'`. The plain format appends the same fields as
`key=value` after the message.
"""

import logging

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
STANDARD_ATTRS = frozenset(RESERVED_ATTRS) | {"message", "asctime", "taskName"}


def extra_fields(record) -> dict:
    return {k: v for k, v in record.__dict__.items() if k not in STANDARD_ATTRS}


class PlainFormatter(logging.Formatter):
    """`time LEVEL logger message key=value …`: the extras stay readable in a terminal."""

    def __init__(self, fmt=PLAIN_FORMAT, *args, **kwargs):
        super().__init__(fmt, *args, **kwargs)

    def format(self, record):
        line = super().format(record)
        fields = extra_fields(record)
        if not fields:
            return line
        pairs = " ".join(f"{key}={value}" for key, value in fields.items())
        head, newline, rest = line.partition("\n")  # keep a traceback below the fields
        return f"{head} {pairs}{newline}{rest}"


class RequestWithoutQuery(logging.Filter):
    """Django's request loggers (`Not Found: /path`, `Internal Server Error`)
    pass the request itself as a field, whose text holds the query string, where
    tokens travel: the field becomes `METHOD /path`."""

    def filter(self, record):
        request = getattr(record, "request", None)
        if request is not None and hasattr(request, "path") and hasattr(request, "method"):
            record.request = f"{request.method} {request.path}"
        return True


def json_formatter():
    # `time`: ISO 8601 in UTC with microseconds, comparable across machines.
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        timestamp="time",
        rename_fields={"levelname": "level", "name": "logger"},
    )
