"""Every page kind carries the security headers a review expects, and the pages
need nothing the strict Content-Security-Policy forbids."""

import re

import pytest

from tests import factories

pytestmark = pytest.mark.django_db


def csp_directives(response):
    header = response.headers["Content-Security-Policy"]
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


@pytest.fixture
def page_kinds(user_client, user, client, admin_client, settings):
    conversation = factories.conversation(user)
    factories.message(conversation, "hello")
    # Django leaves the CSP off its own debug error pages; these are the real ones.
    settings.DEBUG = False
    return {
        "list": lambda: user_client.get("/chat/"),
        "conversation": lambda: user_client.get(f"/chat/{conversation.pk}/"),
        "login": lambda: client.get("/accounts/login/"),
        "signup": lambda: client.get("/accounts/signup/"),
        "admin login": lambda: client.get("/admin/login/"),
        "admin": lambda: admin_client.get("/admin/chat/conversation/"),
        "admin change": lambda: admin_client.get(
            f"/admin/chat/conversation/{conversation.pk}/change/"
        ),
        "not found": lambda: user_client.get("/chat/999999/"),
        "method not allowed": lambda: user_client.get("/chat/new/"),
        "healthz": lambda: client.get("/healthz"),
    }


@pytest.mark.parametrize(
    "kind",
    [
        "list",
        "conversation",
        "login",
        "signup",
        "admin login",
        "admin",
        "admin change",
        "not found",
        "method not allowed",
        "healthz",
    ],
)
def test_every_page_kind_carries_the_security_headers(page_kinds, kind):
    response = page_kinds[kind]()
    assert response.status_code < 500
    directives = csp_directives(response)
    for name in ("script-src", "style-src", "default-src"):
        assert directives[name] == ["'self'"], (name, directives)
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["object-src"] == ["'none'"]
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "camera=()" in response.headers["Permissions-Policy"]


@pytest.mark.parametrize("kind", ["list", "conversation", "login", "signup"])
def test_app_pages_have_no_inline_script_or_style(page_kinds, kind):
    html = page_kinds[kind]().content.decode()
    assert " style=" not in html
    assert "<style" not in html
    for script in re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S):
        assert script.strip() == "", "inline script would be blocked by the CSP"
    assert not re.search(r"\son[a-z]+=", html), "inline event handlers are blocked by the CSP"


def test_templates_hold_no_style_attribute():
    from tests.support import BASE_DIR

    for template in (BASE_DIR / "templates").rglob("*.html"):
        assert "style=" not in template.read_text(), template
