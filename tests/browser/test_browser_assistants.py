"""The assistant picker in a real browser (Chromium via Playwright, a live
Daphne): a plain <select> whose chosen assistant's description shows beside it
as the choice changes, on a conversation page and on the new-conversation
page; switching posts the plain form and the page says who answers next."""

import pytest

from chat.models import Assistant
from tests import factories, support
from tests.browser.browser_support import log_in, new_context, server_env, server_hashers

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def picker(make_user, settings):
    server_hashers(settings)
    user = make_user("picker")
    Assistant.objects.create(
        name="Helper", workflow_id="helper", is_default=True, description="Answers anything."
    )
    writer = Assistant.objects.create(
        name="Writer", workflow_id="writer", description="Writes in the house style."
    )
    conversation = factories.conversation(user, title="Picking")
    factories.message(conversation, "Hello")
    return {"conversation": conversation, "writer": writer}


@pytest.fixture
def server(transactional_db):
    with support.Server(env=server_env(0.3)) as running:
        yield running


def description(page):
    return page.locator("[data-assistant-description]").first


def test_the_chosen_assistants_description_shows_as_the_choice_changes(picker, server, browser):
    context = new_context(browser)
    page = context.new_page()
    log_in(page, server.base_url, "picker")
    page.goto(f"{server.base_url}/chat/{picker['conversation'].pk}/")
    assert description(page).inner_text() == "Answers anything."
    page.select_option(".assistant-switch select[name=assistant]", str(picker["writer"].pk))
    assert description(page).inner_text() == "Writes in the house style."
    page.click(".assistant-switch button[type=submit]")
    page.wait_for_load_state()
    select = page.locator(".assistant-switch select[name=assistant]")
    assert select.input_value() == str(picker["writer"].pk)
    assert description(page).inner_text() == "Writes in the house style."
    # After the reload, the conversation's own (server) answer: Writer answers next.
    page.reload()
    assert select.input_value() == str(picker["writer"].pk)
    context.close()


def test_the_new_conversation_picker_describes_each_choice(picker, server, browser):
    context = new_context(browser)
    page = context.new_page()
    log_in(page, server.base_url, "picker")
    page.goto(f"{server.base_url}/chat/new/")
    assert description(page).inner_text() == "Answers anything."
    page.select_option("#composer select[name=assistant]", str(picker["writer"].pk))
    assert description(page).inner_text() == "Writes in the house style."
    context.close()
