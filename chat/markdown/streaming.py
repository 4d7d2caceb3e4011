"""The reply being written, formatted by the server: one renderer thread per process.

Every streamed piece of a chat reply reaches the page as a `message.delta`
frame with its text (tasks/frames.py). This module adds what the page shows
of it: the text so far rendered as Markdown (chat/markdown/partial.py), sent
as a `message.delta` frame of its own with `html` (the reply so far as
sanitized HTML) and `html_offset` (how many code points of the text it
covers), which the page puts in the reply's body as it is. The final message
is rendered from the same Markdown by the same renderer, so it replaces the
growing reply without a jump.

Why here, and not in the browser: the server already renders every stored
reply, and the page builds no message markup (docs/ARCHITECTURE.md,
"Rendering, rendered once"); a second Markdown and math renderer in
JavaScript would render some replies differently from the final version,
which is the jump this avoids. The cost is kept small and bounded:

- pieces are kept in memory by the process that appended them (the frame
  already carries the text; no query), and a reply is rendered on **one
  thread per process**, not on the thread that appends nor on the event loop;
- each reply is rendered at most every `CHAT_STREAM_RENDER_SECONDS` (the
  first piece at once), and a reply whose render costs more waits four times
  its cost; after each pass the thread rests three times that pass's CPU
  time, so rendering takes at most about a quarter of a core however many
  replies stream (with 200, each is simply formatted less often);
- a render redoes only the reply's last blocks (`PartialCache`), within the
  Markdown budgets and a short CPU deadline;
- a piece that does not continue what this process holds (another process
  appended the one before) makes the next render read the text so far from
  the database, once.

Nothing depends on these frames: the text frames still go out, `sync`
carries the formatted text so far, and the `completed` message is the
truth.
"""

import logging
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings

from live import publish as live
from live.connections import fresh_connections
from tasks.models import AsyncTask

from .partial import PartialCache, render_partial

logger = logging.getLogger(__name__)

# A reply's render may come at most every this many times its own CPU cost.
COST_FACTOR = 4.0
# After a pass, the thread rests this many times the pass's CPU time.
REST_FACTOR = 3.0
# A reply not heard of for this long is forgotten (it ended, or another process has it).
FORGET_SECONDS = 120.0
# At most this many replies are held per process; the oldest go first.
MAX_REPLIES = 2000


@dataclass
class Reply:
    task_id: int
    conversation_id: int | None
    groups: list
    text: str = ""
    visible_offset: int = 0
    thinking: bool = False
    stale: bool = False  # a piece is missing: read the text from the database
    dirty: bool = False
    due: float = 0.0
    seen: float = 0.0
    rendered_from: int = -1  # the visible offset the cache was made for
    cache: PartialCache = field(default_factory=PartialCache)


def partial_html(text, visible_offset=0, thinking=False, cache=None) -> str | None:
    """What the page shows of a reply being written whose text so far is
    `text`: its visible part rendered, or None while it reads "Thinking…"."""
    if thinking:
        return None
    return str(render_partial(text[visible_offset or 0 :], cache))


class Renderer:
    """Formats the replies being written in this process. `note()` is called
    after the commit of each streamed piece; `render_due()` does one pass
    (the thread calls it; tests call it directly)."""

    def __init__(self, send=None, clock=time.monotonic, threaded=True):
        self.send = live.send if send is None else send
        self.clock = clock
        self.threaded = threaded
        self.replies: dict[int, Reply] = {}
        self.condition = threading.Condition()
        self.thread = None

    # --- fed by the append path -------------------------------------------------------

    def note(self, groups, frame) -> None:
        """A streamed piece (its `message.delta` frame) was appended and committed."""
        now = self.clock()
        key = frame["task_id"]
        offset, text = int(frame.get("offset") or 0), frame.get("text") or ""
        with self.condition:
            reply = self.replies.get(key)
            if reply is None:
                if len(self.replies) >= MAX_REPLIES:
                    oldest = min(self.replies.values(), key=lambda item: item.seen)
                    del self.replies[oldest.task_id]
                reply = self.replies[key] = Reply(key, frame.get("conversation_id"), groups)
            reply.groups, reply.seen = groups, now
            if offset > len(reply.text):
                reply.stale = True
            elif offset + len(text) > len(reply.text):
                reply.text = reply.text[:offset] + text
            reply.visible_offset = int(frame.get("visible_offset") or 0)
            reply.thinking = frame.get("thinking") is True
            reply.dirty = True
            if self.threaded:
                self._start()
                self.condition.notify()

    def _start(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._run, name="chat-stream-render", daemon=True)
            self.thread.start()

    # --- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self.condition:
                wait = self._next_wait()
                if wait > 0:
                    self.condition.wait(timeout=wait)
            try:
                spent = self.render_due()
            except Exception:  # noqa: BLE001 - the thread must outlive any one reply
                logger.warning("formatting replies being written failed", exc_info=True)
                spent = 0.05
            if spent:
                time.sleep(spent * REST_FACTOR)

    def _next_wait(self) -> float:
        now = self.clock()
        self._forget(now)
        dues = [reply.due for reply in self.replies.values() if reply.dirty]
        return min(dues) - now if dues else 5.0

    def _forget(self, now) -> None:
        for key in [k for k, reply in self.replies.items() if now - reply.seen > FORGET_SECONDS]:
            del self.replies[key]

    def render_due(self) -> float:
        """Render every reply that changed and whose turn has come; return the
        CPU time spent."""
        now = self.clock()
        with self.condition:
            due = [r for r in self.replies.values() if r.dirty and r.due <= now]
            for reply in due:
                reply.dirty = False
        started = time.thread_time()
        for reply in due:
            self._render(reply)
        return time.thread_time() - started

    def _render(self, reply) -> None:
        if reply.stale:
            reply.text, reply.stale = _text_so_far(reply.task_id), False
        with self.condition:
            text, visible, thinking = reply.text, reply.visible_offset, reply.thinking
        if thinking or not text:
            return
        if reply.rendered_from != visible:
            reply.cache, reply.rendered_from = PartialCache(), visible
        started = time.thread_time()
        html = partial_html(text, visible, cache=reply.cache)
        cost = time.thread_time() - started
        reply.due = self.clock() + max(settings.CHAT_STREAM_RENDER_SECONDS, cost * COST_FACTOR)
        frame = {
            "type": "message.delta",
            "task_id": reply.task_id,
            "conversation_id": reply.conversation_id,
            "offset": len(text),
            "text": "",
            "thinking": False,
            "visible_offset": visible,
            "html": html,
            "html_offset": len(text),
        }
        self.send([(group, {"type": "live.frame", "frame": frame}) for group in reply.groups])


@fresh_connections
def _text_so_far(task_id) -> str:
    text = AsyncTask.objects.filter(pk=task_id).values_list("partial_text", flat=True).first()
    return text or ""


renderer = Renderer()


def note(groups, frame) -> None:
    """The `chat` task type's `on_delta` hook: format the reply so far, soon."""
    if settings.CHAT_STREAM_RENDER_SECONDS <= 0:
        return
    try:
        renderer.note(groups, frame)
    except Exception:  # noqa: BLE001 - the text frames still go out
        logger.warning("reply %s not formatted", frame.get("task_id"), exc_info=True)
