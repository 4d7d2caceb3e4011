"""Full-text search over a user's own messages and conversation titles.

PostgreSQL full-text search (GIN indexes, `websearch_to_tsquery`: words,
"quoted phrases", `or`, `-word`) on PostgreSQL, FTS5 on SQLite, kept in step
with every write of a message or a title in the same transaction (the SQL is
in chat/search/sql.py, the indexes in chat/search/index.py). Both rank
nothing: newest first.

Snippets are escaped text with the matches in `<mark>`: the database marks
them with two private-use characters, and `_marked()` turns those into tags
after escaping everything else.
"""

import html
import re
from dataclasses import dataclass

from django.conf import settings
from django.utils.safestring import SafeString, mark_safe

from . import sql
from .sql import START, STOP

MAX_QUERY_LENGTH = 200
PAGE_SIZE = 20
MAX_PAGES = 50
TITLE_RESULTS = 10


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
    rows = sql.messages(
        user.pk, query, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE, settings.CHAT_PAGE_SIZE
    )
    conversations = []
    if page == 1:
        conversations = [
            ConversationHit(
                id=row.pk,
                title=_marked(row.marked),
                is_archived=row.is_archived,
                updated_at=row.updated_at,
                url=f"/chat/{row.pk}/",
            )
            for row in sql.conversations(user.pk, query, TITLE_RESULTS)
        ]
    return Results(
        query,
        page,
        [_message_hit(row) for row in rows[:PAGE_SIZE]],
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


def _message_hit(row) -> MessageHit:
    """A hit linking to its message on a page that shows it, on a branch
    that holds it (see chat/search/sql.py for how the place is found)."""
    url = f"/chat/{row.conversation_id}/"
    if row.end_id is not None:
        if row.end_depth < settings.CHAT_PAGE_SIZE:
            url += f"?leaf={row.end_id}"
        else:
            url += f"?before={row.first_id}"
    return MessageHit(
        id=row.pk,
        conversation_id=row.conversation_id,
        conversation_title=row.conversation_title,
        role=row.role,
        created_at=row.created_at,
        snippet=_marked(row.snippet),
        url=f"{url}#message-{row.pk}",
    )
