"""Files a workflow returns with its reply: `output.attachments`.

A `completed` callback's output may carry `attachments` = `[{"name",
"content_type", "data_base64"}]`. They are held to the limits of uploads
(count, size, type read from the content; the `content_type` the workflow
names is only a hint, the content decides) and stored as the reply's files.
The whole callback body stays within TASK_WEBHOOK_MAX_BYTES, so a workflow
returning larger files needs that raised. Unusable ones (not a list, bad
base64, past a limit) make the callback answer 422 with nothing stored
(`check`, run before the task is touched); `store_for` writes them when the
reply is stored.
"""

import base64
import binascii

from . import kinds, store


def _entries(output):
    if not isinstance(output, dict) or output.get("attachments") in (None, []):
        return []
    entries = output["attachments"]
    if not isinstance(entries, list):
        raise kinds.FileRefused("output.attachments must be a list", status=422)
    return entries


def _decode(entry, index) -> tuple[str, bytes]:
    if not isinstance(entry, dict):
        raise kinds.FileRefused(f"output.attachments[{index}] must be an object", status=422)
    name, data = entry.get("name"), entry.get("data_base64")
    if not isinstance(name, str) or not name.strip():
        raise kinds.FileRefused(f"output.attachments[{index}] needs a name", status=422)
    if not isinstance(data, str):
        raise kinds.FileRefused(f"output.attachments[{index}] needs data_base64", status=422)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise kinds.FileRefused(
            f"output.attachments[{index}].data_base64 is not base64", status=422
        ) from None
    return name, raw


def uploads(output) -> list[store.Upload]:
    """The checked files of an output; FileRefused (422) when any is unusable."""
    entries = _entries(output)
    if not entries:
        return []
    try:
        kinds.check_count(len(entries))
        return [store.inspect_bytes(*_decode(entry, i)) for i, entry in enumerate(entries)]
    except kinds.FileRefused as refused:
        raise kinds.FileRefused(refused.message, status=422) from None


def check(output) -> None:
    uploads(output)


def store_for(message, user_id, output) -> list:
    """Store an output's files as `message`'s (in the caller's transaction).
    Files that became unusable since `check` (limits changed) are skipped."""
    try:
        found = uploads(output)
    except kinds.FileRefused:
        return []
    if not found:
        return []
    store.save(found)
    try:
        return store.create_rows(message, user_id, found)
    except BaseException:
        store.discard(found)
        raise
