"""The SQL behind chat/search/query.py: one statement finds a page of the user's
messages with their snippets and where each hit's link should lead, one more
finds matching titles.

PostgreSQL: `to_tsvector('english', …)` expression indexes (GIN, written
through at once: see chat/search/index.py), queried with
`websearch_to_tsquery`, snippets by `ts_headline` on the page's rows only.
SQLite: FTS5 tables over the same columns, the same query syntax translated
to FTS5's (`fts5_query`), snippets by `snippet()`/`highlight()`.

Where a hit leads (the `_PLACES` CTEs, plain SQL both databases run): the
conversation's default page when the hit is among its latest messages;
otherwise the branch through the hit, found by following the newest reply
down from it (at most a page deep): `?leaf=` of the leaf it reaches, or, when
the hit is further up than a page, the older page of that branch that ends
with the hit (`?before=` its reply on the branch). Bounded: at most a page of
steps up per conversation and down per hit, whatever the tree's size.
"""

import re
from contextlib import contextmanager

from django.conf import settings
from django.db import OperationalError, connection, transaction

CONFIG = "english"
START, STOP = "\ue000", "\ue001"
MAX_TERMS = 16
HEADLINE_OPTIONS = (
    f'StartSel="{START}", StopSel="{STOP}", MaxWords=30, MinWords=12, '
    'MaxFragments=2, FragmentDelimiter=" … "'
)
TITLE_OPTIONS = f'StartSel="{START}", StopSel="{STOP}", HighlightAll=true'

# Given `found` (a page of hits: id, conversation_id, …): `latest`, the
# latest page of each of their conversations' default branch (as
# chat/branches.py picks it), and `ends`, for every hit not on it, where the
# walk down the newest replies stopped (`depth` steps below the hit; `first`
# is the hit's reply on that path). Params: page size - 1, page size.
_PLACES = """
convs(cid) AS (SELECT DISTINCT conversation_id FROM found),
latest(cid, id, parent_id, depth) AS (
  SELECT v.cid, m.id, m.parent_id, 0
  FROM convs v JOIN chat_messages m ON m.conversation_id = v.cid AND m.id = COALESCE(
    (SELECT l.id FROM chat_messages l JOIN chat_conversations k
       ON k.current_leaf_id = l.id AND l.conversation_id = k.id WHERE k.id = v.cid),
    (SELECT n.id FROM chat_messages n WHERE n.conversation_id = v.cid
       ORDER BY n.created_at DESC, n.id DESC LIMIT 1))
  UNION ALL
  SELECT u.cid, m.id, m.parent_id, u.depth + 1
  FROM latest u JOIN chat_messages m ON m.id = u.parent_id AND m.conversation_id = u.cid
  WHERE u.depth < %s
),
down(hit, cid, id, first, depth) AS (
  SELECT f.id, f.conversation_id, f.id, CAST(NULL AS BIGINT), 0 FROM found f
  WHERE NOT EXISTS (SELECT 1 FROM latest WHERE latest.id = f.id)
  UNION ALL
  SELECT d.hit, d.cid, r.id, COALESCE(d.first, r.id), d.depth + 1
  FROM down d JOIN chat_messages r ON r.id = (
    SELECT n.id FROM chat_messages n WHERE n.conversation_id = d.cid AND n.parent_id = d.id
    ORDER BY n.created_at DESC, n.id DESC LIMIT 1)
  WHERE d.depth < %s
),
deepest(hit, depth) AS (SELECT hit, MAX(depth) FROM down GROUP BY hit),
ends(hit, id, first, depth) AS (
  SELECT d.hit, d.id, d.first, d.depth FROM down d
  JOIN deepest x ON x.hit = d.hit AND x.depth = d.depth
)
"""

# The page of hits, newest first, each with its title, snippet and place.
_MESSAGES = """
WITH RECURSIVE found(id, conversation_id, created_at, role, conversation_title, snippet) AS (
{found}
),
{places}
SELECT f.id, f.conversation_id, f.created_at, f.role, f.conversation_title, f.snippet,
       e.id AS end_id, e.first AS first_id, e.depth AS end_depth
FROM found f LEFT JOIN ends e ON e.hit = f.id
ORDER BY f.created_at DESC, f.id DESC
"""

# The hits are read from the user's own conversations' rows
# (`conversation_id = ANY(ARRAY(…))`, one table, no join), so PostgreSQL can
# intersect the conversation index with the full-text index (BitmapAnd) and
# fetch only the user's matches: joined to the conversations instead, it
# either read every user's matches or ran `to_tsvector` over each of the
# user's rows (a word only other users have: 205 ms on 100,000 rows, 3 ms
# this way).
_POSTGRES_FOUND = f"""
  SELECT h.id, h.conversation_id, h.created_at, h.role, c.title,
         ts_headline('{CONFIG}', h.content, websearch_to_tsquery('{CONFIG}', %s), %s)
  FROM (
    SELECT m.id, m.conversation_id, m.created_at, m.role, m.content
    FROM chat_messages m
    WHERE m.conversation_id = ANY(ARRAY(SELECT id FROM chat_conversations WHERE user_id = %s))
      AND to_tsvector('{CONFIG}', m.content) @@ websearch_to_tsquery('{CONFIG}', %s)
    ORDER BY m.created_at DESC, m.id DESC
    LIMIT %s OFFSET %s
  ) h JOIN chat_conversations c ON c.id = h.conversation_id
"""

_SQLITE_FOUND = """
  SELECT m.id, m.conversation_id, m.created_at, m.role, c.title,
         snippet(chat_messages_fts, 0, %s, %s, '…', 24)
  FROM chat_messages_fts
  JOIN chat_messages m ON m.id = chat_messages_fts.rowid
  JOIN chat_conversations c ON c.id = m.conversation_id
  WHERE chat_messages_fts MATCH %s AND c.user_id = %s
  ORDER BY m.created_at DESC, m.id DESC
  LIMIT %s OFFSET %s
"""

_POSTGRES_TITLES = f"""
SELECT c.id, c.is_archived, c.updated_at, ts_headline('{CONFIG}', c.title, q, %s) AS marked
FROM chat_conversations c, websearch_to_tsquery('{CONFIG}', %s) q
WHERE c.user_id = %s AND to_tsvector('{CONFIG}', c.title) @@ q
ORDER BY c.updated_at DESC, c.id DESC
LIMIT %s
"""

_SQLITE_TITLES = """
SELECT c.id, c.is_archived, c.updated_at, highlight(chat_conversations_fts, 0, %s, %s) AS marked
FROM chat_conversations_fts
JOIN chat_conversations c ON c.id = chat_conversations_fts.rowid
WHERE chat_conversations_fts MATCH %s AND c.user_id = %s
ORDER BY c.updated_at DESC, c.id DESC
LIMIT %s
"""


class TooSlow(Exception):
    """The search ran past SEARCH_TIMEOUT_SECONDS and was cancelled."""


# PostgreSQL's SQLSTATE for a statement cancelled by statement_timeout.
QUERY_CANCELED = "57014"


@contextmanager
def time_limit():
    """A transaction whose statements PostgreSQL cancels after
    SEARCH_TIMEOUT_SECONDS (`set_config(…, true)`, i.e. `SET LOCAL`: it ends
    with the transaction, so it holds behind a transaction pooler and leaves
    the pooled connection as it was); raises TooSlow when one was. No limit
    on other databases, or when the setting is 0."""
    seconds = settings.SEARCH_TIMEOUT_SECONDS
    limited = connection.vendor == "postgresql" and seconds > 0
    try:
        with transaction.atomic():
            if limited:
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT current_setting('statement_timeout'), "
                        "set_config('statement_timeout', %s, true)",
                        [f"{max(1, round(seconds * 1000))}ms"],
                    )
                    before = cursor.fetchone()[0]
            yield
            if limited:
                # Put back what was there, for the rest of an enclosing transaction.
                with connection.cursor() as cursor:
                    cursor.execute("SELECT set_config('statement_timeout', %s, true)", [before])
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) == QUERY_CANCELED:
            raise TooSlow from error
        raise


def terms(query):
    """How many words or phrases the query looks for, and how many it
    excludes (`-word`), as `fts5_query` and websearch_to_tsquery read them."""
    positives = negatives = 0
    for negated, phrase, word in (m.groups() for m in _TERM.finditer(query)):
        if word is not None and word.lower() == "or":
            continue
        if word is not None and word.startswith("-"):
            negated, word = "-", word[1:]
        if re.search(r"\w", phrase if word is None else word):
            if negated:
                negatives += 1
            else:
                positives += 1
    return positives, negatives


def indexable(query) -> bool:
    """PostgreSQL: whether its full-text index can serve the query
    (`querytree` is `T` when it cannot: a word to look for was a stop word,
    `the -pelican`, or sits in an `or` with an exclusion). Elsewhere: true."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT querytree(websearch_to_tsquery('{CONFIG}', %s))", [query])
        return cursor.fetchone()[0] != "T"


def matching_message_ids(query):
    """SQL and parameters selecting the ids of every user's messages that
    match (the admin's message search), through the full-text index; None
    when the query has no word to look for."""
    if not terms(query)[0]:
        return None
    if connection.vendor == "postgresql":
        return (
            f"SELECT id FROM chat_messages WHERE to_tsvector('{CONFIG}', content) "
            f"@@ websearch_to_tsquery('{CONFIG}', %s)",
            (query,),
        )
    match = fts5_query(query)
    if not match:
        return None
    return "SELECT rowid FROM chat_messages_fts WHERE chat_messages_fts MATCH %s", (match,)


def messages(user_id, query, limit, offset, page_size):
    """Messages (with `conversation_title`, `snippet`, `end_id`, `first_id`,
    `end_depth`) of one page of hits, newest first."""
    from ..models import Message

    if connection.vendor == "postgresql":
        found = _POSTGRES_FOUND
        params = [query, HEADLINE_OPTIONS, user_id, query, limit, offset]
    else:
        match = fts5_query(query)
        if not match:
            return []
        found = _SQLITE_FOUND
        params = [START, STOP, match, user_id, limit, offset]
    sql = _MESSAGES.format(found=found, places=_PLACES)
    return list(Message.objects.raw(sql, [*params, page_size - 1, page_size]))


def conversations(user_id, query, limit):
    """Conversations (with `marked`, the highlighted title) whose title matches."""
    from ..models import Conversation

    if connection.vendor == "postgresql":
        sql, params = _POSTGRES_TITLES, [TITLE_OPTIONS, query, user_id, limit]
    else:
        match = fts5_query(query)
        if not match:
            return []
        sql, params = _SQLITE_TITLES, [START, STOP, match, user_id, limit]
    return list(Conversation.objects.raw(sql, params))


_TERM = re.compile(r'(-?)"([^"]*)"?|(\S+)')


def fts5_query(query) -> str:
    """websearch_to_tsquery's syntax in FTS5's: words and "phrases" must all
    match, `or` between two terms means either, `-term` excludes. Every term
    is quoted, so nothing the user types is read as FTS5 syntax."""
    parts, pending_or, positives = [], False, 0
    for negated, phrase, word in (m.groups() for m in _TERM.finditer(query)):
        if word is not None and word.lower() == "or":
            pending_or = bool(parts)
            continue
        if word is not None and word.startswith("-") and len(word) > 1:
            negated, word = "-", word[1:]
        text = phrase if word is None else word
        if not re.search(r"\w", text):
            continue
        term = '"' + text.replace('"', '""') + '"'
        if negated:
            if positives:
                parts.append(f"NOT {term}")
        else:
            parts.append(f"OR {term}" if pending_or else term)
            positives += 1
        pending_or = False
        if len(parts) >= MAX_TERMS:
            break
    return " ".join(parts) if positives else ""
