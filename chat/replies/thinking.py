"""A reply's leading `<think>…</think>` block: the one place that knows it.

Models served through OpenAI-compatible APIs often begin with their reasoning
in `<think>…</think>`. The rule: a text whose first characters past leading
whitespace are `<think>` starts with the model's thinking, up to the first
`</think>`; the reply is what follows, past whitespace. A stopped reply keeps
the two apart (`split_thinking`), and a reply being written reads "Thinking…"
until the block closes (`stream_view`, sent in `message.delta` frames), so
the page knows nothing of the tags.

Everything the rule reads of a text is its `Marks`: found by Python from the
text (`Marks.of`), or by the database in the very statement that appends a
streamed piece (`Marks.expressions`, returned beside the new length), so a
piece costs no query of its own however long the reply grows.
"""

from dataclasses import dataclass

from django.db.models import Case, F, Func, TextField, Value, When
from django.db.models.functions import Length, StrIndex, Substr
from django.db.models.lookups import GreaterThan

OPEN = "<think>"
CLOSE = "</think>"

# What str.strip() removes (str.isspace; none lies past U+3000), spelled out
# so that the database trims exactly the same characters.
WHITESPACE = "".join(char for char in map(chr, range(0x3001)) if char.isspace())

# The names under which the database hands the marks back.
_PREFIX = "think_"


@dataclass(frozen=True)
class Marks:
    """What the rule reads of a text (indexes count code points)."""

    length: int
    # The first len(OPEN) characters past leading whitespace ("" for none).
    opening: str
    # Where the first CLOSE begins, -1 without one.
    close: int
    # Where the first non-whitespace character after that CLOSE is (the
    # length when there is none yet); meaningless without a CLOSE.
    reply_from: int

    @classmethod
    def of(cls, text: str) -> "Marks":
        close = text.find(CLOSE)
        after = text[close + len(CLOSE) :].lstrip() if close >= 0 else ""
        return cls(len(text), text.lstrip()[: len(OPEN)], close, len(text) - len(after))

    @staticmethod
    def expressions(field: str = "partial_text") -> dict:
        """The same marks of a text column, computed by the database (named
        with the `think_` prefix; `from_row` reads them back)."""
        text = F(field)
        close = StrIndex(text, Value(CLOSE))  # 1-based, 0 without one
        after = _ltrim(Substr(text, close + len(CLOSE)))
        return {
            f"{_PREFIX}length": Length(text),
            f"{_PREFIX}opening": Substr(_ltrim(text), 1, len(OPEN)),
            f"{_PREFIX}close": close - 1,
            f"{_PREFIX}reply_from": Case(
                When(GreaterThan(close, 0), then=Length(text) - Length(after)),
                default=Length(text),
            ),
        }

    @classmethod
    def from_row(cls, row) -> "Marks | None":
        """The marks of a task row: those the database returned with it, else
        those of its loaded `partial_text`; None when it has neither (no
        query is ever spent here)."""
        if hasattr(row, f"{_PREFIX}opening"):
            return cls(
                int(getattr(row, f"{_PREFIX}length")),
                getattr(row, f"{_PREFIX}opening") or "",
                int(getattr(row, f"{_PREFIX}close")),
                int(getattr(row, f"{_PREFIX}reply_from")),
            )
        if "partial_text" in row.__dict__:
            return cls.of(row.partial_text or "")
        return None


def _ltrim(expression):
    return Func(expression, Value(WHITESPACE), function="LTRIM", output_field=TextField())


def split_thinking(text: str) -> tuple[str, str]:
    """A reply's text → (content, thinking). Text without a leading block is
    all content; a block never closed (a stop while the model was thinking)
    is all thinking."""
    marks = Marks.of(text)
    if marks.opening != OPEN:
        return text, ""
    start = len(text) - len(text.lstrip()) + len(OPEN)
    if marks.close < 0:
        return "", text[start:].strip()
    return text[marks.reply_from :].strip(), text[start : marks.close].strip()


def stream_view(marks: Marks) -> dict:
    """What the page shows of a reply being written, as `message.delta`
    fields: `thinking` (the reply reads "Thinking…") and `visible_offset`,
    where the text to show begins (the end when there is nothing to show)."""
    if marks.opening == OPEN:
        if marks.close < 0:
            return {"thinking": True, "visible_offset": marks.length}
        return {"thinking": False, "visible_offset": marks.reply_from}
    if not marks.opening:  # nothing but whitespace yet
        return {"thinking": False, "visible_offset": marks.length}
    if OPEN.startswith(marks.opening):  # "<thi" may still become "<think>"
        return {"thinking": True, "visible_offset": marks.length}
    return {"thinking": False, "visible_offset": 0}
