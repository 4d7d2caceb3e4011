"""How much work one message's Markdown may cost (chat/markdown/render.py renders it).

A reply is untrusted input of up to CHAT_REPLY_MAX_LENGTH (100,000) characters
of content and as many of thinking, and markdown-it-py, Pygments and
latex2mathml are pure Python whose cost grows with what they are given. Each
limit below keeps the worst input near a normal reply's cost; past a limit the
rest degrades to text instead of vanishing:
- nesting: markdown-it's `maxNesting` for inline constructs, and a block rule
  that shows lists and quotes nested deeper than BLOCK_DEPTH as a paragraph;
- inline parsing: past INLINE_BUDGET characters that can start a construct
  (and links, bare or not), further paragraphs are plain text;
- tables: at most TABLE_ROWS_BUDGET rows per message are a table;
- formulas past a size or a count are shown as code, code past a budget
  unhighlighted (`formula_fits`, `highlight_fits`, counted per render from
  `start()`);
- and whatever shape the rules above missed: past RENDER_CPU_SECONDS of CPU
  time, checked as the parser goes (`check_deadline`, and a first block,
  inline and late core rule that look at the clock every few hundred calls),
  the render stops with RenderTooSlow and the message is shown as plain text.
`make bench` measures the worst adversarial input at the largest size.
"""

import re
import threading
import time

from markdown_it.common.utils import escapeHtml
from markdown_it.rules_block.table import table as _table_rule

# markdown-it's own guard: token nesting (a list item counts two levels). The
# cost of some inputs (thousands of `[`) grows with it: CommonMark's preset value.
MAX_NESTING = 20
# Lists and quotes nested deeper than this (in token levels: 8 lists, 16
# quotes) are shown as text.
BLOCK_DEPTH = 16
# Larger formulas, or more of them, are shown as code, and code past a budget
# unhighlighted: both converters are pure Python and cost grows with the input.
MATH_MAX_LENGTH = 2_000
# Inline parsing costs a pass over the rules for each of these characters (a
# `[` may start a link, a `*` a run of emphasis…). Past this many in a message,
# further paragraphs are shown as plain text: a genuine reply of the largest
# size uses a fraction of it; 8,000 `[` would cost 30 times a normal reply.
INLINE_BUDGET = 2_000
_COSTLY = re.compile(r"[\[\]*_~<`$&]")
# A link costs the linkifier a match, a normalisation and four tokens: about
# 75 µs of CPU against 15 µs for a `[`. Counted per `://` and per host the
# linkifier would take (so bare domains and e-mail addresses count too; a URL
# with a scheme counts twice, 10, where it counted 8 before).
LINK_COST = 5
MATH_MAX_FORMULAS = 100
# Table rows per message; rows past them show as the text they are.
TABLE_ROWS_BUDGET = 300
# Characters of code Pygments highlights per message (about 40 ms of CPU);
# code past them is shown plain.
HIGHLIGHT_BUDGET = 6_000

# CPU seconds (of the rendering thread: `time.thread_time`, which other work on
# a busy machine does not inflate) one message's Markdown may cost, content and
# thinking together; past them it is shown as plain text. A genuine reply of
# the largest size (100,000 characters of prose, lists, tables, code and
# formulas, tests/chat/markdown/model_reply.md repeated) costs 0.2-0.35 s here, with
# these budgets lifted too; the adversarial shapes of tests/adversarial_markdown.py
# stay under 1 s each. 2 s leaves a genuine reply and its thinking three times
# their cost before the fallback, and bounds what a hostile one can take.
RENDER_CPU_SECONDS = 2.0
# How many calls of the clock rules pass between two looks at the clock (a
# look costs about a microsecond; a call a few).
CLOCK_EVERY = 256


class RenderTooSlow(Exception):
    """The render went past its deadline (RENDER_CPU_SECONDS)."""


# What the message being rendered (on this thread) has spent so far.
_spent = threading.local()


def deadline() -> float:
    """The `time.thread_time()` by which a render starting now must end."""
    return time.thread_time() + RENDER_CPU_SECONDS


def start(until=None) -> None:
    """A new message: nothing spent yet; its deadline `until` (a `deadline()`,
    shared by the texts of one message) or RENDER_CPU_SECONDS from now."""
    _spent.formulas = _spent.highlighted = _spent.ticks = 0
    _spent.until = deadline() if until is None else until


def check_deadline() -> None:
    """Raise RenderTooSlow when the message's deadline has passed."""
    if time.thread_time() > getattr(_spent, "until", float("inf")):
        raise RenderTooSlow


def tick() -> None:
    """Count a call; look at the clock every CLOCK_EVERY calls (the first included)."""
    ticks = getattr(_spent, "ticks", 0)
    _spent.ticks = ticks + 1
    if ticks % CLOCK_EVERY == 0:
        check_deadline()


def formula_fits(latex) -> bool:
    """Count a formula; False when it is too long or one too many."""
    _spent.formulas = getattr(_spent, "formulas", 0) + 1
    return len(latex) <= MATH_MAX_LENGTH and _spent.formulas <= MATH_MAX_FORMULAS


def highlight_fits(code) -> bool:
    """Whether `code` may still be highlighted (see `spend_highlight`)."""
    return getattr(_spent, "highlighted", 0) + len(code) <= HIGHLIGHT_BUDGET


def spend_highlight(code) -> None:
    _spent.highlighted = getattr(_spent, "highlighted", 0) + len(code)


# --- markdown-it rules -------------------------------------------------------------


def install(md) -> None:
    """The rules that keep a render within these limits (after the table,
    footnote and math rules are in place)."""
    md.block.ruler.at("table", _bounded_table, {"alt": ["paragraph", "reference"]})
    md.block.ruler.before("table", "deep_block_as_text", _deep_block_as_text)
    # The clock: first of the block rules (tried at each line) and of the
    # inline rules (at each position, and in every look-ahead for a link's
    # end); the core rules in between (linkify) and after look at it too.
    md.block.ruler.before("deep_block_as_text", "block_clock", _block_clock)
    md.inline.ruler.before(md.inline.ruler.get_all_rules()[0], "inline_clock", _inline_clock)
    md.core.ruler.push("core_clock", _core_clock)
    # linkify-it's own test for a host it would take (`www.`, a dot and a known
    # top-level domain, which bare domains and e-mail addresses have).
    hosts = re.compile(md.linkify.re["host_fuzzy_test"], re.IGNORECASE)
    md.core.ruler.before("inline", "inline_budget", lambda state: _inline_budget(state, hosts))
    md.core.ruler.after("inline", "after_inline_clock", _core_clock)
    md.add_render_rule("plain_inline", _plain_inline)


def _block_clock(state, start_line, end_line, silent):
    tick()
    return False


def _inline_clock(state, silent):
    tick()
    return False


def _core_clock(state):
    check_deadline()


def _deep_block_as_text(state, start_line, end_line, silent):
    """Below BLOCK_DEPTH, the rest of the container is one plain paragraph.

    markdown-it itself drops everything past `maxNesting`; this rule runs first
    and keeps the text, unparsed as blocks, so deep input degrades instead.
    """
    if state.level < BLOCK_DEPTH or silent:
        return False
    text = state.getLines(start_line, end_line, state.blkIndent, False).strip()
    token = state.push("paragraph_open", "p", 1)
    token.map = [start_line, end_line]
    token = state.push("inline", "", 0)
    token.content = text
    token.map = [start_line, end_line]
    token.children = []
    state.push("paragraph_close", "p", -1)
    state.line = end_line
    return True


def _inline_budget(state, hosts):
    """Paragraphs (inline runs) past INLINE_BUDGET costly characters stay text."""
    spent = 0
    for token in state.tokens:
        if token.type != "inline":
            continue
        content = token.content
        cost = len(_COSTLY.findall(content)) + LINK_COST * _links(hosts, content)
        if spent + cost > INLINE_BUDGET:
            token.type = "plain_inline"
        else:
            spent += cost


def _links(hosts, content) -> int:
    """About how many links the linkifier would find: each `://`, and each
    host it would take, so bare domains and e-mail addresses count as well."""
    return content.count("://") + sum(1 for _ in hosts.finditer(content))


def _plain_inline(self, tokens, idx, options, env):
    return escapeHtml(tokens[idx].content).replace("\n", "<br>\n")


def _bounded_table(state, start_line, end_line, silent):
    """markdown-it's table rule, ending a table at the message's row budget
    (a token per cell makes rows the costliest block construct)."""
    left = state.env.get("table_rows_left", TABLE_ROWS_BUDGET)
    if left <= 0:
        return False
    # A table's lines: the header, the delimiter row, then body rows.
    if not _table_rule(state, start_line, min(end_line, start_line + 2 + left), silent):
        return False
    if not silent:
        state.env["table_rows_left"] = left - max(0, state.line - start_line - 2)
    return True
