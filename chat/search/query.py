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


NO_POSITIVE_TERM = (
    "Add a word to look for: a search of only excluded words (-word) "
    "would have to read every message."
)
TOO_SLOW = "That search took too long. Try more words, or less common ones."
# Control characters (NUL among them: PostgreSQL takes none in a text value),
# surrogates and line or paragraph separators: read as spaces.
_NOT_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")


def normalize(text) -> str:
    """What was typed, as the search reads it: control characters read as
    spaces, runs of spaces as one."""
    return " ".join(_NOT_TEXT.sub(" ", text or "").split())


def clean_query(text) -> str:
    query = normalize(text)
    if len(query) > MAX_QUERY_LENGTH:
        raise SearchRefused(
            f"Your search is {len(query):,} characters long; the limit is {MAX_QUERY_LENGTH}."
        )
    return query


def search(user, text, page=1) -> Results:
    """The user's messages (one page, newest first) and, on the first page,
    conversations whose title matches; archived ones included.

    A query needs a word to look for (only `-excluded` words would read
    every row: refused before any query); on PostgreSQL the search runs
    under SEARCH_TIMEOUT_SECONDS."""
    query = clean_query(text)
    if not query:
        raise SearchRefused("Type one or more words to search for.")
    if not 1 <= page <= MAX_PAGES:
        raise SearchRefused(f"Results go up to page {MAX_PAGES}; narrow the search instead.")
    positives, negatives = sql.terms(query)
    if not positives:
        # Only exclusions would read every row; no word at all finds nothing.
        if negatives:
            raise SearchRefused(NO_POSITIVE_TERM)
        return Results(query, page, [], [], has_next=False)
    try:
        with sql.time_limit():
            if not sql.indexable(query):
                raise SearchRefused(NO_POSITIVE_TERM)
            rows = sql.messages(
                user.pk, query, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE, settings.CHAT_PAGE_SIZE
            )
            titles = sql.conversations(user.pk, query, TITLE_RESULTS) if page == 1 else []
    except sql.TooSlow:
        raise SearchRefused(TOO_SLOW) from None
    conversations = [
        ConversationHit(
            id=row.pk,
            title=_marked(row.marked),
            is_archived=row.is_archived,
            updated_at=row.updated_at,
            url=f"/chat/{row.pk}/",
        )
        for row in titles
    ]
    return Results(
        query,
        page,
        [_message_hit(row) for row in rows[:PAGE_SIZE]],
        conversations,
        has_next=len(rows) > PAGE_SIZE,
    )


# Markdown's marks in a snippet of a message's source: strong, emphasis and
# strikethrough runs, code backticks, heading and quote marks at a line's start.
_MARKDOWN_MARKS = re.compile(
    r"\*{2,}|_{2,}|~~|`+|(?<![\w*])\*(?=\S)|(?<=\S)\*(?![\w*])|^\s*#{1,6}\s+|^\s*>\s?",
    re.M,
)


def unmarked(text) -> str:
    """A snippet's text without the Markdown marks that would show raw (`**`)."""
    return _MARKDOWN_MARKS.sub("", text)


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
            out.append(html.escape(unmarked(part)))
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
