"""Files in a real browser (Chromium, a live Daphne, the development runner):
attach by drag and drop and by paste, chips with Remove, the send with its
progress, the thumbnail and the chip in the page, the runner's report."""

import base64
import io

import pytest
from PIL import Image

from tests import factories, support
from tests.browser.browser_support import (
    csp_violations,
    log_in,
    new_context,
    screenshot,
    server_env,
    server_hashers,
    wait_js,
    wait_live,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PDF = "%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"


def png_base64() -> str:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (220, 60, 20)).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


@pytest.fixture
def conversation(make_user, settings):
    server_hashers(settings)
    user = make_user("filer")
    return factories.conversation(user, title="With files")


@pytest.fixture
def server(transactional_db, tmp_path):
    with support.Server(env=server_env(0.1, MEDIA_ROOT=tmp_path / "media")) as running:
        yield running


DROP = """([text]) => {
  const transfer = new DataTransfer();
  transfer.items.add(new File([text], "notes.pdf", { type: "application/pdf" }));
  const zone = document.getElementById("conversation");
  const options = { dataTransfer: transfer, bubbles: true, cancelable: true };
  zone.dispatchEvent(new DragEvent("dragover", options));
  zone.dispatchEvent(new DragEvent("drop", options));
}"""

PASTE = """([data]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], "image.png", { type: "image/png" }));
  const box = document.getElementById("composer-input");
  const options = { clipboardData: transfer, bubbles: true, cancelable: true };
  box.dispatchEvent(new ClipboardEvent("paste", options));
}"""


def chip_names(page):
    return page.eval_on_selector_all(
        "#composer-chips .file-chip__name", "(nodes) => nodes.map((n) => n.textContent)"
    )


def test_drop_and_paste_attach_files_that_are_sent_and_shown(conversation, server, browser):
    context = new_context(browser)
    page = context.new_page()
    log_in(page, server.base_url, "filer")
    page.goto(f"{server.base_url}/chat/{conversation.pk}/")
    wait_live(page)

    page.evaluate(DROP, [PDF])
    page.evaluate(PASTE, [png_base64()])
    assert chip_names(page) == ["notes.pdf", "pasted-image-1.png"]
    # Remove takes a chip (and its file) away; drop it again.
    page.click("#composer-chips .file-chip__remove >> nth=0")
    assert chip_names(page) == ["pasted-image-1.png"]
    page.evaluate(DROP, [PDF])
    assert page.evaluate("document.getElementById('composer-files').files.length") == 2

    page.fill("#composer-input", "What do these say?")
    page.click("#composer-send")
    page.wait_for_selector(".message--user .message__files .file-chip__thumbnail")
    wait_js(
        page,
        "(() => { const img = document.querySelector('.message--user .file-chip__thumbnail');"
        " return img && img.complete && img.naturalWidth > 0; })()",
    )
    names = page.eval_on_selector_all(
        ".message--user .message__files .file-chip__name",
        "(nodes) => nodes.map((n) => n.textContent)",
    )
    assert sorted(names) == ["notes.pdf", "pasted-image-1.png"]
    # The chips are gone once sent.
    assert chip_names(page) == []
    # The development runner lists what it received.
    page.wait_for_selector(".message--assistant:has-text('notes.pdf')")
    screenshot(page, "files-sent")
    # The PDF's chip downloads it (a download, never shown inline).
    href = page.get_attribute(".message--user a.file-chip__link[download]", "href")
    response = page.request.get(f"{server.base_url}{href}")
    assert response.status == 200
    assert response.headers["content-disposition"].startswith("attachment")
    assert response.body().startswith(b"%PDF")
    assert csp_violations(page) == []
    context.close()


def test_a_refused_file_says_why_and_sends_nothing(conversation, server, browser):
    context = new_context(browser)
    page = context.new_page()
    log_in(page, server.base_url, "filer")
    page.goto(f"{server.base_url}/chat/{conversation.pk}/")
    wait_live(page)
    # An executable named like an image: refused from its content by the server.
    page.evaluate(
        """() => {
          const transfer = new DataTransfer();
          const bytes = new Uint8Array(64); bytes[0] = 77; bytes[1] = 90;
          transfer.items.add(new File([bytes], "cat.png", { type: "image/png" }));
          const box = document.getElementById("composer-input");
          const options = { clipboardData: transfer, bubbles: true, cancelable: true };
  box.dispatchEvent(new ClipboardEvent("paste", options));
        }"""
    )
    page.click("#composer-send")
    wait_js(
        page,
        "document.getElementById('composer-notice').textContent.includes('cannot be attached')",
    )
    assert page.locator(".message--user").count() == 0
    context.close()


def test_the_attach_button_opens_the_picker_and_adds_chips(conversation, server, browser):
    context = new_context(browser)
    page = context.new_page()
    log_in(page, server.base_url, "filer")
    page.goto(f"{server.base_url}/chat/{conversation.pk}/")
    wait_live(page)
    assert page.is_visible("#composer-attach") and not page.is_visible("#composer-files")
    with page.expect_file_chooser() as chooser:
        page.click("#composer-attach")
    chooser.value.set_files([{"name": "a.txt", "mimeType": "text/plain", "buffer": b"first"}])
    with page.expect_file_chooser() as chooser:
        page.click("#composer-attach")
    chooser.value.set_files([{"name": "b.txt", "mimeType": "text/plain", "buffer": b"second"}])
    assert chip_names(page) == ["a.txt", "b.txt"]  # a second pick adds to the first
    context.close()
