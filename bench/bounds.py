"""What user input costs at its largest, as ratios measured in one run.

The tests check that the bounds hold (the budgets engage, the output is right);
how long the work takes is measured here, never in a test (a shared machine
makes any fixed time flaky). Three figures, each CPU time of this thread:

- **Reply shapes**: every adversarial Markdown shape (tests/adversarial_markdown.py)
  at the largest reply's size, beside a genuine reply of the same size (the
  model's reply in tests/chat/markdown/model_reply.md, repeated). None may fall
  back to plain text (the CPU limit), and the worst costs at most a few genuine
  replies.
- **Linkify is linear**: bare domains one per line (finding N1 in
  docs/SECURITY.md) with the budgets lifted, n and 2n lines: doubling the input
  must about double the time (quadratic would quadruple it).
- **A line a byte at a time**: n8n's stream reader fed a long line one byte per
  part, n and 2n bytes: linear as well.

`make bench` runs these as section 0b and writes them under `bounds` in
bench/results/latest.json; `make bench-bounds` runs them alone (about a minute).
"""

import asyncio
import os
import statistics
import time
from pathlib import Path

ROUNDS = 3
# Goals: the worst shape ÷ a genuine reply of the same size, and the growth
# when the input doubles (2 is linear, 4 quadratic).
SHAPE_RATIO_GOAL = 3.0
DOUBLING_RATIO_GOAL = 2.8


def _cpu(work, rounds=ROUNDS):
    """Median CPU seconds of this thread over `rounds` calls of `work`."""
    samples = []
    for _ in range(rounds):
        started = time.thread_time()
        work()
        samples.append(time.thread_time() - started)
    return statistics.median(samples)


def reply_shapes():
    from django.conf import settings

    from chat.markdown import render as markdown
    from chat.markdown import render_markdown
    from tests.adversarial_markdown import cases

    size = settings.CHAT_REPLY_MAX_LENGTH
    sample = (
        Path(__file__).resolve().parent.parent / "tests" / "chat" / "markdown" / "model_reply.md"
    ).read_text()
    genuine = sample * (size // len(sample))
    fell_back = []
    original = markdown.plain_paragraphs

    def record(text):
        fell_back.append(len(text))
        return original(text)

    markdown.plain_paragraphs = record
    try:
        render_markdown("warm *up*")
        genuine_s = _cpu(lambda: render_markdown(genuine))
        shapes = {}
        for name, text in cases(size).items():
            before = len(fell_back)
            shapes[name] = round(_cpu(lambda text=text: render_markdown(text)) * 1000, 1)
            if len(fell_back) > before:
                shapes[name] = f"fell back ({shapes[name]} ms)"
    finally:
        markdown.plain_paragraphs = original
    timed = {name: ms for name, ms in shapes.items() if not isinstance(ms, str)}
    worst = max(timed, key=timed.get)
    return {
        "size": size,
        "genuine_cpu_ms": round(genuine_s * 1000, 1),
        "worst": worst,
        "worst_cpu_ms": timed[worst],
        "worst_ratio": round(timed[worst] / (genuine_s * 1000), 2),
        "fell_back": sorted(name for name, ms in shapes.items() if isinstance(ms, str)),
        "cases_cpu_ms": shapes,
    }


def linkify_doubling(lines=10_000):
    from chat.markdown import budgets, render_markdown

    saved = budgets.INLINE_BUDGET, budgets.RENDER_CPU_SECONDS
    budgets.INLINE_BUDGET, budgets.RENDER_CPU_SECONDS = 10**9, 600
    try:
        small = _cpu(lambda: render_markdown("x.io\n" * lines))
        large = _cpu(lambda: render_markdown("x.io\n" * (2 * lines)))
    finally:
        budgets.INLINE_BUDGET, budgets.RENDER_CPU_SECONDS = saved
    return {
        "lines": lines,
        "cpu_ms": round(small * 1000, 1),
        "doubled_cpu_ms": round(large * 1000, 1),
        "ratio": round(large / small, 2),
    }


def one_byte_parts_doubling(size=150_000):
    from tasks.outbound import dispatch, streaming

    def read(length):
        reader = streaming.StreamReader(
            streaming.Streams(), 1, response=None, deadline_seconds=10, hooks=dispatch.STREAM_HOOKS
        )
        line = b'{"type": "item", "content": "' + b"a" * length + b'"}\n'

        async def parts():
            for index in range(len(line)):
                yield line[index : index + 1]

        async def lines():
            return [text async for text in reader._lines(b"", parts())]

        return lambda: asyncio.run(lines())

    small = _cpu(read(size))
    large = _cpu(read(2 * size))
    return {
        "bytes": size,
        "cpu_ms": round(small * 1000, 1),
        "doubled_cpu_ms": round(large * 1000, 1),
        "ratio": round(large / small, 2),
    }


def measure():
    shapes = reply_shapes()
    linkify = linkify_doubling()
    stream = one_byte_parts_doubling()
    return {
        "reply_shapes": shapes,
        "linkify_doubling": linkify,
        "one_byte_parts_doubling": stream,
        "goals": {
            "no_shape_falls_back": not shapes["fell_back"],
            f"worst_shape_le_{SHAPE_RATIO_GOAL:g}x_genuine": shapes["worst_ratio"]
            <= SHAPE_RATIO_GOAL,
            "linkify_linear": linkify["ratio"] <= DOUBLING_RATIO_GOAL,
            "one_byte_parts_linear": stream["ratio"] <= DOUBLING_RATIO_GOAL,
        },
    }


def main():
    import json

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    django.setup()
    figures = measure()
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    return 0 if all(figures["goals"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
