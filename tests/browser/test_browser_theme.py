"""The theme a user chose in Settings wins over the device's: each colour is
written once as light-dark(light, dark) and the page's color-scheme picks it
(static/chat/chat.css), so a dark choice is dark on a light device and a
light choice light on a dark one."""

import pytest

from accounts.models import UserSettings
from tests import support
from tests.browser.browser_support import log_in, new_context, server_env, server_hashers

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LIGHT_BG, DARK_BG = "rgb(247, 247, 248)", "rgb(21, 23, 27)"


@pytest.fixture
def server(transactional_db):
    with support.Server(env=server_env(0.3)) as running:
        yield running


@pytest.fixture
def themed(make_user, settings, request):
    """A user whose Settings say `request.param` (made before the browser runs)."""
    server_hashers(settings)
    UserSettings.objects.create(user=make_user("themed"), theme=request.param)
    return request.param


@pytest.mark.parametrize(
    ("themed", "device", "expected"),
    [
        ("dark", "light", DARK_BG),
        ("light", "dark", LIGHT_BG),
        ("system", "dark", DARK_BG),
        ("system", "light", LIGHT_BG),
    ],
    indirect=["themed"],
)
def test_the_chosen_theme_decides_the_colours(themed, server, browser, device, expected):
    context = new_context(browser, color_scheme=device)
    page = context.new_page()
    log_in(page, server.base_url, "themed")
    page.goto(f"{server.base_url}/chat/")
    assert page.evaluate("document.documentElement.dataset.theme") == themed
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == expected
    context.close()
