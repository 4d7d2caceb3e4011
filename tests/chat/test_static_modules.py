"""The page's scripts: native ES modules, no inline code, imports that resolve."""

import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

from tests import factories

STATIC = Path(django_settings.BASE_DIR) / "static" / "chat"
IMPORT = re.compile(r'(?:import|from)\s*(?:\{[^}]*\}\s*from\s*)?"(\./[^"]+)"', re.S)


def imports(path):
    return IMPORT.findall(path.read_text())


def test_every_relative_import_names_a_module_that_exists():
    modules = sorted(STATIC.glob("*.js"))
    assert len(modules) >= 8
    for module in modules:
        for name in imports(module):
            assert (STATIC / name).exists(), f"{module.name} imports missing {name}"


def test_the_conversation_script_is_split_into_small_modules():
    for module in STATIC.glob("*.js"):
        assert len(module.read_text().splitlines()) < 260, module.name
    assert {"./socket.js", "./messages.js", "./composer.js", "./sidebar.js"} <= set(
        imports(STATIC / "chat.js")
    )


def test_scripts_spell_no_chat_urls():
    # URLs come from the server's markup (form actions, data- attributes).
    for module in STATIC.glob("*.js"):
        text = module.read_text()
        assert "/chat/" not in text, module.name
        assert "/retry/" not in text, module.name


@pytest.mark.django_db
def test_pages_have_no_inline_scripts_or_styles(user_client, user, client):
    conversation = factories.conversation(user)
    factories.message(conversation, "hello")
    pages = [
        user_client.get(conversation.get_absolute_url()).content.decode(),
        user_client.get("/chat/").content.decode(),
        user_client.get("/chat/new/").content.decode(),
        client.get("/accounts/login/").content.decode(),
        client.get("/accounts/signup/").content.decode(),
    ]
    for html in pages:
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert 'type="module"' in tag and "src=" in tag, tag
        assert re.findall(r"<script\b[^>]*>([^<]+)</script>", html) == []
        assert " style=" not in html
        assert "<style" not in html
        assert not re.search(r"\son[a-z]+=", html)


def test_production_static_files_import_their_hashed_neighbours(tmp_path, settings):
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "chatproject.storage.StaticFilesStorage"},
    }
    call_command("collectstatic", "--noinput", "-v", "0")
    hashed = [p for p in (tmp_path / "chat").glob("chat.*.js") if p.name.count(".") == 2]
    assert len(hashed) == 1
    names = imports(hashed[0])
    assert names and all(re.fullmatch(r"\./\w+\.[0-9a-f]{12}\.js", name) for name in names)
    for name in names:
        assert (tmp_path / "chat" / name).exists()


# Where the page's script may still make elements, and why: none of it is a
# message's markup, which comes from the server (fragments, frames'
# "switches", the page's <template id="stream-template">).
MAY_CREATE_ELEMENTS = {
    "dom.js": "a <template> to parse the server's HTML; a form's missing CSRF field",
    "copy.js": "the off-screen textarea of the clipboard fallback",
    "editor.js": "the in-place editor of the user's own message",
}


def test_scripts_build_no_message_markup():
    for module in STATIC.glob("*.js"):
        text = module.read_text()
        if module.name not in MAY_CREATE_ELEMENTS:
            assert "createElement" not in text, module.name
            assert ".innerHTML" not in text, module.name
        for name in ("message__meta", "message__author", "versions__count", "versions__next"):
            assert f'className = "{name}' not in text, (module.name, name)


def test_scripts_know_nothing_of_think_tags():
    # Whether a reply is thinking, and where its visible text starts, is the
    # server's to say in its message.delta frames (chat/replies/thinking.py).
    for module in STATIC.glob("*.js"):
        text = module.read_text().lower()
        assert "<think" not in text and "think>" not in text, module.name
        assert "thinking…" not in text, module.name  # the words come from the page
