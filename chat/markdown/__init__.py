"""Markdown for chat content: render (markdown-it-py and its plugins), the work
budgets, linear-time bare links, and the sanitizer. Callers use the two
functions below; docs/ARCHITECTURE.md describes each module."""

from .render import plain_text, render_markdown

__all__ = ["plain_text", "render_markdown"]
