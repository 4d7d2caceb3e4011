"""Files through a real n8n (each version of N8N_VERSIONS): a message's files
reach the workflow as `input.attachments`, n8n's HTTP Request node downloads
them through their signed links (no session), and the file the workflow
returns in `output.attachments` is stored and shown with its reply.
Skips on a laptop without n8n; fails under CI=true."""

import pytest
import requests

from chat.models import Attachment, Conversation, Message, Role
from tests.e2e.n8n_support import project_server
from tests.e2e.test_n8n_e2e import _form_post, reply_to, sign_up

pytestmark = [pytest.mark.n8n, pytest.mark.django_db(transaction=True)]

PDF = b"%PDF-1.4\n% pdf words for n8n\n%%EOF\n"
TEXT = "plain words 4711 for n8n\n"


@pytest.fixture(scope="module")
def files_server(n8n, django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        server = project_server(
            n8n,
            N8N_CHAT_WORKFLOW="chat-files",
            MEDIA_ROOT=str(tmp_path_factory.mktemp("media")),
            TASKS_WORKER_IN_PROCESS="1",
        )
    try:
        yield server
    finally:
        server.stop()


def test_n8n_downloads_the_files_through_their_signed_links_and_returns_one(files_server):
    session = sign_up(files_server, "files-user")
    response = _form_post(session, f"{files_server.base_url}/chat/new/", {"title": "Files"})
    assert response.status_code in (302, 303), response.text[:500]
    conversation = Conversation.objects.get(user__username="files-user")
    page = f"{files_server.base_url}/chat/{conversation.pk}/"
    session.get(page)
    response = session.post(
        f"{page}messages/",
        data={"content": "Read these", "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        files=[
            ("files", ("report.pdf", PDF, "application/pdf")),
            ("files", ("notes.txt", TEXT.encode(), "text/plain")),
        ],
        allow_redirects=False,
    )
    assert response.status_code == 303, response.text[:500]

    [reply] = reply_to(conversation.pk, timeout=60)
    # n8n read both files' bytes through the links (a session was never there).
    assert f"report.pdf ({len(PDF)} bytes) read {len(PDF)} characters" in reply.content
    assert "pdf words for n8n" in reply.content
    assert f"notes.txt ({len(TEXT)} bytes)" in reply.content and "plain words 4711" in reply.content
    # The file the workflow returned is the reply's, the owner's to download.
    [returned] = Attachment.objects.filter(message=reply)
    assert (returned.name, returned.content_type) == ("summary.txt", "text/plain")
    download = session.get(f"{files_server.base_url}/files/{returned.pk}/")
    assert download.status_code == 200
    assert b"plain words 4711" in download.content
    assert "attachment" in download.headers["Content-Disposition"]
    # Nobody else reads it: another user gets 404, no session a login redirect.
    stranger = sign_up(files_server, "files-stranger")
    assert stranger.get(f"{files_server.base_url}/files/{returned.pk}/").status_code == 404
    anonymous = requests.get(
        f"{files_server.base_url}/files/{returned.pk}/", allow_redirects=False, timeout=10
    )
    assert anonymous.status_code == 302
    assert Message.objects.filter(conversation=conversation, role=Role.USER).count() == 1


@pytest.fixture(scope="module")
def offline_server(n8n, django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        server = project_server(
            n8n,
            N8N_CHAT_WORKFLOW="chat-reply-offline",
            MEDIA_ROOT=str(tmp_path_factory.mktemp("media-offline")),
            TASKS_WORKER_IN_PROCESS="1",
        )
    try:
        yield server
    finally:
        server.stop()


def test_the_shipped_workflow_downloads_the_files_and_reads_the_text_ones(offline_server):
    import base64

    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    )
    session = sign_up(offline_server, "shipped-files")
    _form_post(session, f"{offline_server.base_url}/chat/new/", {"title": "Shipped"})
    conversation = Conversation.objects.get(user__username="shipped-files")
    page = f"{offline_server.base_url}/chat/{conversation.pk}/"
    session.get(page)
    response = session.post(
        f"{page}messages/",
        data={"content": "", "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        files=[
            ("files", ("notes.txt", TEXT.encode(), "text/plain")),
            ("files", ("dot.png", png, "image/png")),
            ("files", ("report.pdf", PDF, "application/pdf")),
        ],
        allow_redirects=False,
    )
    assert response.status_code == 303, response.text[:500]
    [reply] = reply_to(conversation.pk, timeout=60)
    assert "Files read by n8n" in reply.content
    assert "plain words 4711" in reply.content  # a text file's content, downloaded
    assert "dot.png (an image" in reply.content
    assert f"report.pdf (application/pdf, {len(PDF)} bytes)" in reply.content
