"""A conversation is a tree of messages; a page shows one branch of it.

Every message but a conversation's first names its `parent`, the message it
follows. A branch is the path from a root down to a leaf. The page shows one:
the one ending at `?leaf=`, or by default the conversation's current leaf
(`current_leaf_id`, set by the last send, edit, regenerate or reply), or,
when that is unset or stale, the newest message (always a leaf: a message is
older than anything under it).

Everything here is a bounded number of queries whatever the tree's size:
walking up from a leaf is a recursive CTE (plain SQL that PostgreSQL and
SQLite both run) that stops after the rows it needs; the `‹ i / n ›` switch of
a page's messages is one statement.
"""

from dataclasses import dataclass

from django.db import connection
from django.db.models.expressions import RawSQL

# A tree written by hand (plain SQL) could hold a cycle: every walk stops here.
MAX_DEPTH = 1_000_000

_NEWEST = (
    "(SELECT n.id FROM chat_messages n WHERE n.conversation_id = %s "
    "ORDER BY n.created_at DESC, n.id DESC LIMIT 1)"
)
_CURRENT = (
    "(SELECT m.id FROM chat_messages m JOIN chat_conversations c "
    "ON c.current_leaf_id = m.id AND m.conversation_id = c.id WHERE c.id = %s)"
)
_DEFAULT_LEAF = f"COALESCE({_CURRENT}, {_NEWEST})"


def send_parent(conversation_id, parent_id=None) -> tuple[RawSQL, RawSQL]:
    """For a send: the message it follows (`parent_id` if that is a message of
    the conversation, else NULL; without it, the default leaf) and whether
    that message has children already (then the new message has siblings),
    as two annotations for the conversation's own query."""
    if parent_id is None:
        parent, params = _DEFAULT_LEAF, [conversation_id, conversation_id]
    else:
        parent = "(SELECT p.id FROM chat_messages p WHERE p.id = %s AND p.conversation_id = %s)"
        params = [parent_id, conversation_id]
    answered = f"EXISTS (SELECT 1 FROM chat_messages k WHERE k.parent_id = {parent})"
    return RawSQL(parent, params), RawSQL(answered, params)


def default_leaf_id(conversation_id) -> int | None:
    """The leaf the conversation's page shows by default (None: no messages)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {_DEFAULT_LEAF}", [conversation_id, conversation_id])
        row = cursor.fetchone()
    return row[0] if row else None


def _walk_up(conversation_id, start_sql, start_params, rows, final="SELECT id FROM branch"):
    """SQL and params: the messages from `start_sql` up towards the root, at
    most `rows` of them, nearest first (`depth` 0 is the start)."""
    sql = (
        "WITH RECURSIVE branch(id, parent_id, depth) AS ("
        " SELECT s.id, s.parent_id, 0 FROM chat_messages s"
        f" WHERE s.conversation_id = %s AND s.id = {start_sql}"
        " UNION ALL"
        " SELECT m.id, m.parent_id, b.depth + 1 FROM chat_messages m"
        " JOIN branch b ON m.id = b.parent_id"
        " WHERE m.conversation_id = %s AND b.depth < %s"
        f") {final}"
    )
    return sql, [conversation_id, *start_params, conversation_id, rows - 1]


def branch_queryset(queryset, conversation_id, *, leaf_id=None, above_id=None, rows):
    """`queryset` narrowed to at most `rows` messages of a branch, nearest the
    end: ending at `leaf_id`, or above (before) `above_id`, or at the default leaf."""
    if above_id is not None:
        start, params = "(SELECT a.parent_id FROM chat_messages a WHERE a.id = %s)", [above_id]
    elif leaf_id is not None:
        start, params = "%s", [leaf_id]
    else:
        start, params = _DEFAULT_LEAF, [conversation_id, conversation_id]
    sql, params = _walk_up(conversation_id, start, params, rows)
    return queryset.filter(pk__in=RawSQL(sql, params))


def branch_ids(conversation_id, leaf_id=None) -> list[int]:
    """Every message id of a branch, oldest first (the Markdown export)."""
    if leaf_id is None:
        start, params = _DEFAULT_LEAF, [conversation_id, conversation_id]
    else:
        start, params = "%s", [leaf_id]
    final = "SELECT id, depth FROM branch"
    sql, params = _walk_up(conversation_id, start, params, MAX_DEPTH, final=final)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [pk for pk, _depth in sorted(rows, key=lambda row: -row[1])]


def history(message, limit) -> list[dict]:
    """The branch before `message`, oldest first, at most `limit` messages
    (`id`, `role`, `content` and whether it has files, `has_files`, each)."""
    if limit <= 0 or message.parent_id is None:
        return []
    final = (
        "SELECT h.id, h.role, h.content, b.depth,"
        " EXISTS (SELECT 1 FROM chat_attachments a WHERE a.message_id = h.id)"
        " FROM branch b JOIN chat_messages h ON h.id = b.id"
    )
    sql, params = _walk_up(message.conversation_id, "%s", [message.parent_id], limit, final=final)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    rows.sort(key=lambda row: -row[3])
    return [
        {"id": pk, "role": role, "content": content, "has_files": bool(has_files)}
        for pk, role, content, _depth, has_files in rows
    ]


@dataclass(frozen=True)
class Versions:
    """A message's place among its siblings: the `‹ index / count ›` switch and
    where its arrows lead (the newest leaf under the previous or next sibling)."""

    index: int
    count: int
    previous_leaf: int | None
    next_leaf: int | None


_STATS = """
SELECT m.id AS id, COUNT(*) AS n,
       SUM(CASE WHEN s.id <= m.id THEN 1 ELSE 0 END) AS i,
       MAX(CASE WHEN s.id < m.id THEN s.id END) AS prev_id,
       MIN(CASE WHEN s.id > m.id THEN s.id END) AS next_id
FROM chat_messages m JOIN chat_messages s
  ON s.conversation_id = m.conversation_id AND s.parent_id = m.parent_id
WHERE m.id IN ({ids}) GROUP BY m.id
UNION ALL
SELECT m.id, COUNT(*),
       SUM(CASE WHEN s.id <= m.id THEN 1 ELSE 0 END),
       MAX(CASE WHEN s.id < m.id THEN s.id END),
       MIN(CASE WHEN s.id > m.id THEN s.id END)
FROM chat_messages m JOIN chat_messages s
  ON s.conversation_id = m.conversation_id AND s.parent_id IS NULL
WHERE m.id IN ({ids}) AND m.parent_id IS NULL GROUP BY m.id
"""

# One statement: sibling counts of the given messages, then, from each
# previous and next sibling, its subtree (disjoint from the shown branch), to
# find the newest message under it, which is a leaf.
_VERSIONS = """
WITH RECURSIVE stats(id, n, i, prev_id, next_id) AS ({stats}),
ends(x) AS (
  SELECT prev_id FROM stats WHERE n > 1 AND prev_id IS NOT NULL
  UNION SELECT next_id FROM stats WHERE n > 1 AND next_id IS NOT NULL
),
below(origin, id, depth) AS (
  SELECT x, x, 0 FROM ends
  UNION ALL
  SELECT b.origin, c.id, b.depth + 1 FROM chat_messages c JOIN below b ON c.parent_id = b.id
  WHERE c.conversation_id = %s AND b.depth < %s
)
SELECT s.id, s.n, s.i,
       (SELECT MAX(b.id) FROM below b WHERE b.origin = s.prev_id),
       (SELECT MAX(b.id) FROM below b WHERE b.origin = s.next_id)
FROM stats s WHERE s.n > 1
"""


def annotate(messages) -> None:
    """Set `message.versions` (a Versions, or None without siblings) on each
    message of one conversation, in one query."""
    messages = [m for m in messages if m.pk]
    for message in messages:
        message.versions = None
    if not messages:
        return
    ids = ", ".join(str(int(m.pk)) for m in messages)
    sql = _VERSIONS.format(stats=_STATS.format(ids=ids))
    with connection.cursor() as cursor:
        cursor.execute(sql, [messages[0].conversation_id, MAX_DEPTH])
        rows = cursor.fetchall()
    found = {pk: Versions(int(i), int(n), prev, nxt) for pk, n, i, prev, nxt in rows}
    for message in messages:
        message.versions = found.get(message.pk)
