"""n8n's streamed answer format, and nothing else: no database, no HTTP.

A Webhook node in *Streaming* response mode answers at once (status 200,
headers, a chunked body) and then writes one JSON object per line while the
workflow runs: `{"type": "begin" | "item" | "end" | "error" | "keepalive",
"content": "…", "metadata": {…}}`. Since the status and headers go out before
any node runs, a refusal (a bad signature) or a failure can only show in the
body: n8n writes `{"type": "error", "content": <the error's description>}`
when a node fails. An answer whose first line is not such an object is a
plain answer that merely came chunked.

The shipped workflows announce their execution id in the stream: their first
`item` (from the *Accept* node) is a JSON object `{"accepted": true,
"executionId": "…"}`, which is bookkeeping, not reply text.
"""

import json

from .executions import execution_id_of

CHUNK_TYPES = {"begin", "item", "end", "error", "keepalive"}


def parse_chunk(line):
    """One line of n8n's stream as (type, content), or None when it is not a chunk.

    `content` is a string, or None (begin, end, keepalive, an error without
    description)."""
    try:
        chunk = json.loads(line)
    except ValueError:
        return None
    if not isinstance(chunk, dict) or chunk.get("type") not in CHUNK_TYPES:
        return None
    content = chunk.get("content")
    return chunk["type"], content if isinstance(content, str) else None


def announced_execution_id(content) -> str:
    """The execution id of an item `{"executionId": "…"}` (or `execution_id`), else ""."""
    if not content or not content.lstrip().startswith("{"):
        return ""
    try:
        data = json.loads(content)
    except ValueError:
        return ""
    return execution_id_of(data)


def parse_body(text):
    """A whole streamed body (a probe's answer, a test's) as a list of (type, content)
    chunks, or None when its first non-empty line is not a chunk (a plain answer)."""
    chunks = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parsed = parse_chunk(line)
        if parsed is None:
            if not chunks:
                return None
            continue
        chunks.append(parsed)
    return chunks if chunks else None


def streamed_text(chunks) -> str:
    """The text of a parsed stream's items (an announced execution id left out)."""
    items = [content or "" for kind, content in chunks if kind == "item"]
    if items and announced_execution_id(items[0]):
        items = items[1:]
    return "".join(items)


def error_of(chunks):
    """(True, description) when the stream carries an `error` chunk, else (False, None)."""
    for kind, content in chunks:
        if kind == "error":
            return True, content
    return False, None
