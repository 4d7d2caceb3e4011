"""The chat pages: short views that parse, call chat.services, and render.

One module per concern (`conversations`, `messages`, `search`, `export`),
helpers they share in `common`; chat/urls.py names each view.
"""
