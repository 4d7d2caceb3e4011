"""A reply being written is formatted by the server (chat/markdown/partial.py,
chat/markdown/streaming.py): no raw marks at any length, the same HTML as the final
version once the text is whole, bounded work on adversarial text, and frames
that carry it."""

import re
import threading

import pytest

from chat.markdown import streaming
from chat.markdown.partial import PartialCache, close_tail, render_partial
from chat.markdown.render import render_markdown
from tasks import frames
from tasks.models import AsyncTask
from tests.adversarial_markdown import cases
from tests.task_support import chat_task

RICH = """# A plan

Here is **the short answer** with *emphasis*, `inline code` and ~~old~~ words.

- [x] done step
- [ ] open step
  - nested item

| Step | Cost |
|:-----|-----:|
| one  | **2** |
| two  | 3    |

```python
def total(items):
    return sum(items)
```

> A quote with a [link](https://example.com/docs).

Inline math $x^2 + 1$ and display math:

$$
\\frac{a}{b}
$$

1. first
2. second with **bold end**
"""


def shown_text(html):
    return re.sub(r"<[^>]+>", "", html)


def test_no_prefix_of_a_rich_reply_shows_raw_marks_or_table_pipes():
    cache = PartialCache()
    for end in range(1, len(RICH) + 1):
        text = shown_text(render_partial(RICH[:end], cache))
        assert "**" not in text and "|" not in text and "~~" not in text, RICH[:end]


def test_the_whole_text_renders_as_the_final_version_does():
    cache = PartialCache()
    for end in range(1, len(RICH), 7):
        render_partial(RICH[:end], cache)
    assert render_partial(RICH, cache) == render_markdown(RICH)
    assert render_partial(RICH) == render_markdown(RICH)


def test_the_kept_prefix_grows_so_each_render_redoes_only_the_tail():
    text = "".join(f"Paragraph {n} with **bold** words.\n\n" for n in range(300))
    cache = PartialCache()
    for end in range(0, len(text), 500):
        render_partial(text[:end], cache)
    render_partial(text, cache)
    assert len(text) - cache.end < 100


@pytest.mark.parametrize(
    ("tail", "shown"),
    [
        ("Some **bold", "Some **bold**"),
        ("Some **", "Some"),
        ("A `code", "A `code`"),
        ("*ital and **both", "*ital and **both***"),
        ("See [docs](https://exa", "See [docs](https://exa)"),
        ("- item one\n- item **two", "- item one\n- item **two**"),
        ("Intro\n\n| a | b |\n|---", "Intro\n\n"),
        ("| a | b |", ""),
        ("| a | b |\n|---|---|\n| 1", "| a | b |\n|---|---|\n| 1"),
        ("```py\nx = '**'", "```py\nx = '**'"),
    ],
)
def test_the_tail_is_closed_or_held_back(tail, shown):
    assert close_tail(tail) == shown


@pytest.mark.parametrize("name", sorted(cases(1000)))
def test_adversarial_partial_markdown_stays_bounded(name):
    text = cases(20_000)[name]
    cache = PartialCache()
    for end in range(2_000, len(text) + 1, 6_000):
        html = render_partial(text[:end], cache)
    # Bounded output (the budgets show what they do not render as text).
    assert len(html) < 40 * len(text) + 10_000


class Sent(list):
    def __call__(self, sends):
        self.extend(event["frame"] for _, event in sends)


def delta(task_id, offset, text, **extra):
    return {"task_id": task_id, "conversation_id": 7, "offset": offset, "text": text, **extra}


def test_the_renderer_sends_the_reply_so_far_formatted(settings):
    settings.CHAT_STREAM_RENDER_SECONDS = 0.2
    sent, now = Sent(), [100.0]
    renderer = streaming.Renderer(send=sent, clock=lambda: now[0], threaded=False)
    renderer.note(["g"], delta(1, 0, "Hello **wor"))
    renderer.render_due()
    assert [(f["html_offset"], f["html"]) for f in sent] == [
        (11, "<p>Hello <strong>wor</strong></p>\n")
    ]
    # Within its interval a reply waits; then it goes with everything so far.
    renderer.note(["g"], delta(1, 11, "ld**!"))
    renderer.render_due()
    assert len(sent) == 1
    now[0] += 0.25
    renderer.render_due()
    assert sent[-1]["html"] == "<p>Hello <strong>world</strong>!</p>\n"
    assert sent[-1]["type"] == "message.delta" and sent[-1]["conversation_id"] == 7
    renderer.render_due()
    assert len(sent) == 2  # nothing changed: nothing sent


def test_while_it_thinks_nothing_is_formatted(settings):
    settings.CHAT_STREAM_RENDER_SECONDS = 0.2
    sent = Sent()
    renderer = streaming.Renderer(send=sent, threaded=False)
    renderer.note(["g"], delta(1, 0, "<think>hmm", thinking=True, visible_offset=10))
    renderer.render_due()
    assert sent == []


@pytest.mark.django_db(transaction=True)
def test_a_missing_piece_makes_the_renderer_read_the_text_so_far(user, settings):
    settings.CHAT_STREAM_RENDER_SECONDS = 0.2
    task = chat_task(user)
    AsyncTask.objects.filter(pk=task.pk).update(partial_text="# Title\n\nand more")
    sent = Sent()
    renderer = streaming.Renderer(send=sent, threaded=False)
    renderer.note(["g"], delta(task.pk, 10, "nd more"))  # another process wrote the start
    # On a thread of its own, as the renderer's (it manages its own connection).
    thread = threading.Thread(target=renderer.render_due)
    thread.start()
    thread.join()
    assert sent[-1]["html"] == "<h1>Title</h1>\n<p>and more</p>\n"


@pytest.mark.django_db
def test_a_sync_frame_carries_the_text_so_far_formatted(user, settings):
    settings.CHAT_STREAM_RENDER_SECONDS = 0.2
    task = chat_task(user)
    AsyncTask.objects.filter(pk=task.pk).update(partial_text="A **bold** start and | pipe")
    task = AsyncTask.objects.get(pk=task.pk)
    frame = frames.delta_frame(task, 0, task.partial_text, formatted=True)
    assert frame["html"] == "<p>A <strong>bold</strong> start and | pipe</p>\n"
    assert frame["html_offset"] == len(task.partial_text)
    assert "html" not in frames.delta_frame(task, 0, task.partial_text)
    settings.CHAT_STREAM_RENDER_SECONDS = 0  # formatting off: the page shows the text
    assert "html" not in frames.delta_frame(task, 0, task.partial_text, formatted=True)
