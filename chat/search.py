"""Full-text search over a user's own messages and conversation titles.

PostgreSQL: `to_tsvector('english', …)` expression indexes (GIN) on
`chat_messages.content` and `chat_conversations.title`, queried with
`websearch_to_tsquery` (words, "quoted phrases", `or`, `-word`), snippets by
`ts_headline`. SQLite: FTS5 tables over the same columns (external content,
Porter stemming), kept in step by triggers, so every write of a message or a
title updates its index in the same transaction; the same query syntax is
translated to FTS5's. Both rank nothing: newest first.

Snippets are escaped text with the matches in `<mark>`: the database marks
them with two private-use characters, and `_marked()` turns those into tags
after escaping everything else.
"""

import html
import re
from dataclasses import dataclass

from django.db import connection
from django.utils.safestring import SafeString, mark_safe

MAX_QUERY_LENGTH = 200
MAX_TERMS = 16
PAGE_SIZE = 20
MAX_PAGES = 50
TITLE_RESULTS = 10
CONFIG = "english"
START, STOP = "\ue000", "\ue001"
HEADLINE_OPTIONS = (
    f'StartSel="{START}", StopSel="{STOP}", MaxWords=30, MinWords=12, '
    'MaxFragments=2, FragmentDelimiter=" … "'
)
TITLE_OPTIONS = f'StartSel="{START}", StopSel="{STOP}", HighlightAll=true'


class SearchRefused(Exception):
    """A query that cannot be run; `message` says why in plain words."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


@dataclass
class MessageHit:
    id: int
    conversation_id: int
    conversation_title: str
    role: str
    created_at: object
    snippet: SafeString
    url: str


@dataclass
class ConversationHit:
    id: int
    title: SafeString
    is_archived: bool
    updated_at: object
    url: str


@dataclass
class Results:
    query: str
    page: int
    messages: list
    conversations: list
    has_next: bool


def clean_query(text) -> str:
    query = " ".join((text or "").split())
    if len(query) > MAX_QUERY_LENGTH:
        raise SearchRefused(
            f"Your search is {len(query):,} characters long; the limit is {MAX_QUERY_LENGTH}."
        )
    return query


def search(user, text, page=1) -> Results:
    """The user's messages (one page, newest first) and, on the first page,
    conversations whose title matches; archived ones included."""
    query = clean_query(text)
    if not query:
        raise SearchRefused("Type one or more words to search for.")
    if not 1 <= page <= MAX_PAGES:
        raise SearchRefused(f"Results go up to page {MAX_PAGES}; narrow the search instead.")
    backend = _Postgres() if connection.vendor == "postgresql" else _Sqlite()
    rows = backend.messages(user.pk, query, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE)
    conversations = []
    if page == 1:
        conversations = _conversation_hits(
            user, backend.conversations(user.pk, query, TITLE_RESULTS)
        )
    return Results(
        query,
        page,
        _message_hits(user, rows[:PAGE_SIZE]),
        conversations,
        has_next=len(rows) > PAGE_SIZE,
    )


def _marked(text) -> SafeString:
    """Escape everything, then turn the database's markers into `<mark>`."""
    out, open_ = [], False
    for part in re.split(f"([{START}{STOP}])", text or ""):
        if part == START:
            if not open_:
                out.append("<mark>")
                open_ = True
        elif part == STOP:
            if open_:
                out.append("</mark>")
                open_ = False
        else:
            out.append(html.escape(part))
    if open_:
        out.append("</mark>")
    return mark_safe("".join(out))  # noqa: S308 - escaped above


def _message_hits(user, rows) -> list:
    """(id, snippet) rows → hits, in their order, each linking to its message
    on the conversation's page: the latest page when it is there, else the
    older page that ends with it (one query for all)."""
    from django.conf import settings
    from django.db.models import OuterRef, Q, Subquery

    from .models import Message

    if not rows:
        return []
    # (The `>=` lets the (conversation, created_at) index bound the scan.)
    later = Message.objects.filter(
        conversation_id=OuterRef("conversation_id"), created_at__gte=OuterRef("created_at")
    ).filter(
        Q(created_at__gt=OuterRef("created_at"))
        | Q(created_at=OuterRef("created_at"), pk__gt=OuterRef("pk"))
    )
    later = later.order_by("created_at", "id").values("id")
    size = settings.CHAT_PAGE_SIZE
    messages = (
        Message.objects.filter(pk__in=[row[0] for row in rows], conversation__user=user)
        .select_related("conversation")
        .only("id", "role", "created_at", "conversation__id", "conversation__title")
        .annotate(next_id=Subquery(later[:1]), beyond_page=Subquery(later[size - 1 : size]))
    )
    by_id = {message.pk: message for message in messages}
    hits = []
    for message_id, snippet in rows:
        message = by_id.get(message_id)
        if message is None:
            continue
        url = f"/chat/{message.conversation_id}/"
        if message.beyond_page is not None:
            url += f"?before={message.next_id}"
        hits.append(
            MessageHit(
                id=message.pk,
                conversation_id=message.conversation_id,
                conversation_title=message.conversation.title,
                role=message.role,
                created_at=message.created_at,
                snippet=_marked(snippet),
                url=f"{url}#message-{message.pk}",
            )
        )
    return hits


def _conversation_hits(user, rows) -> list:
    from .models import Conversation

    if not rows:
        return []
    found = Conversation.objects.for_user(user).filter(pk__in=[row[0] for row in rows])
    by_id = {c.pk: c for c in found.only("id", "is_archived", "updated_at")}
    return [
        ConversationHit(
            id=pk,
            title=_marked(title),
            is_archived=by_id[pk].is_archived,
            updated_at=by_id[pk].updated_at,
            url=f"/chat/{pk}/",
        )
        for pk, title in rows
        if pk in by_id
    ]


class _Postgres:
    def messages(self, user_id, query, limit, offset):
        sql = f"""
            WITH hits AS (
                SELECT m.id, m.created_at, m.content
                FROM chat_messages m
                JOIN chat_conversations c ON c.id = m.conversation_id
                WHERE c.user_id = %s
                  AND to_tsvector('{CONFIG}', m.content) @@ websearch_to_tsquery('{CONFIG}', %s)
                ORDER BY m.created_at DESC, m.id DESC
                LIMIT %s OFFSET %s
            )
            SELECT id, ts_headline('{CONFIG}', content, websearch_to_tsquery('{CONFIG}', %s), %s)
            FROM hits ORDER BY created_at DESC, id DESC
        """  # noqa: S608 - CONFIG is a constant; user input goes in parameters
        params = [user_id, query, limit, offset, query, HEADLINE_OPTIONS]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def conversations(self, user_id, query, limit):
        sql = f"""
            SELECT id, ts_headline('{CONFIG}', title, q, %s)
            FROM chat_conversations, websearch_to_tsquery('{CONFIG}', %s) q
            WHERE user_id = %s AND to_tsvector('{CONFIG}', title) @@ q
            ORDER BY updated_at DESC, id DESC
            LIMIT %s
        """  # noqa: S608 - CONFIG is a constant; user input goes in parameters
        with connection.cursor() as cursor:
            cursor.execute(sql, [TITLE_OPTIONS, query, user_id, limit])
            return cursor.fetchall()


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


class _Sqlite:
    def messages(self, user_id, query, limit, offset):
        match = fts5_query(query)
        if not match:
            return []
        sql = """
            SELECT m.id, snippet(chat_messages_fts, 0, %s, %s, '…', 24)
            FROM chat_messages_fts
            JOIN chat_messages m ON m.id = chat_messages_fts.rowid
            JOIN chat_conversations c ON c.id = m.conversation_id
            WHERE chat_messages_fts MATCH %s AND c.user_id = %s
            ORDER BY m.created_at DESC, m.id DESC
            LIMIT %s OFFSET %s
        """
        with connection.cursor() as cursor:
            cursor.execute(sql, [START, STOP, match, user_id, limit, offset])
            return cursor.fetchall()

    def conversations(self, user_id, query, limit):
        match = fts5_query(query)
        if not match:
            return []
        sql = """
            SELECT c.id, highlight(chat_conversations_fts, 0, %s, %s)
            FROM chat_conversations_fts
            JOIN chat_conversations c ON c.id = chat_conversations_fts.rowid
            WHERE chat_conversations_fts MATCH %s AND c.user_id = %s
            ORDER BY c.updated_at DESC, c.id DESC
            LIMIT %s
        """
        with connection.cursor() as cursor:
            cursor.execute(sql, [START, STOP, match, user_id, limit])
            return cursor.fetchall()
