"""Files and n8n: `input.attachments` with signed links (the message's and the
history's), and `output.attachments` stored as the reply's files."""

import base64
import io
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from PIL import Image

from chat import services
from chat.models import Attachment, Message, Role
from n8n import devrunner
from tasks.models import AsyncTask, TaskStatus
from tasks.outbound.dispatch import dispatch_body
from tests import factories
from tests.task_support import post_callback

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n%%EOF\n"


def png_bytes(size=(8, 8)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (0, 90, 200)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.PUBLIC_BASE_URL = "https://chat.example.test"
    return tmp_path / "media"


def path_of(url):
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


@pytest.fixture
def sent(user):
    """A first message with a PDF, its reply, then a second message with an image."""
    conversation = factories.conversation(user)
    first = services.send_message(
        user, conversation, "read this", files=[SimpleUploadedFile("a.pdf", PDF)]
    )
    AsyncTask.objects.filter(pk=first.async_task_id).update(status=TaskStatus.COMPLETED)
    factories.message(conversation, "done", role=Role.ASSISTANT, parent=first)
    second = services.send_message(
        user, conversation, "and this", files=[SimpleUploadedFile("b.png", png_bytes())]
    )
    return first, second


def test_the_task_input_lists_files_without_links(sent):
    _first, second = sent
    data = second.async_task.input_data
    image = Attachment.objects.get(name="b.png")
    assert data["attachments"] == [
        {"id": image.pk, "name": "b.png", "content_type": "image/png", "size": image.size}
    ]
    assert "url" not in str(data)  # links are made at dispatch, never stored


def test_the_dispatch_carries_signed_links_for_the_message_and_the_history(sent):
    _first, second = sent
    body = dispatch_body(second.async_task)
    files = body["input"]["attachments"]
    assert [f["name"] for f in files] == ["b.png"]
    assert set(files[0]) == {"id", "name", "content_type", "size", "url"}
    assert files[0]["url"].startswith(f"https://chat.example.test/files/{files[0]['id']}/?sig=")
    history = body["input"]["history"]
    assert history[0]["attachments"][0]["name"] == "a.pdf"
    assert "url" in history[0]["attachments"][0]
    # Anyone holding the link (n8n) downloads without a session.
    for entry in (files[0], history[0]["attachments"][0]):
        response = Client().get(path_of(entry["url"]))
        assert response.status_code == 200
        assert b"".join(response.streaming_content)[:4] in (b"%PDF", b"\x89PNG")


def test_a_replayed_link_after_the_tasks_deadline_is_403(sent):
    _first, second = sent
    task = second.async_task
    url = dispatch_body(task)["input"]["attachments"][0]["url"]
    later = time.time() + task.timeout_seconds + 5
    from chat.files import links

    file_id = int(urlsplit(url).path.split("/")[2])
    sig = urlsplit(url).query.removeprefix("sig=")
    from urllib.parse import unquote

    assert links.check(file_id, unquote(sig))
    assert not links.check(file_id, unquote(sig), now=later)
    # A task created long ago: its links are already past its deadline.
    AsyncTask.objects.filter(pk=task.pk).update(created_at=timezone.now() - timedelta(hours=1))
    task.refresh_from_db()
    stale = dispatch_body(task)["input"]["attachments"][0]["url"]
    assert Client().get(path_of(stale)).status_code == 403


def test_the_development_runner_reports_the_files_it_received(sent):
    _first, second = sent
    body = dispatch_body(second.async_task)
    reply = devrunner.reply_for(body, "dev-1")
    assert "b.png" in reply["content"]
    assert str(Attachment.objects.get(name="b.png").size) in reply["content"]


# --- output.attachments ------------------------------------------------------------------


def completed(content, attachments):
    return {"status": "completed", "output": {"content": content, "attachments": attachments}}


def test_files_a_workflow_returns_are_stored_as_the_replys(client, user, sent, media):
    _first, second = sent
    task = second.async_task
    image = png_bytes((50, 40))
    payload = completed(
        "Here is a chart",
        [
            {
                "name": "chart.png",
                "content_type": "image/png",
                "data_base64": base64.b64encode(image).decode(),
            }
        ],
    )
    response = post_callback(client, task.pk, payload)
    assert response.status_code == 200, response.content
    reply = Message.objects.get(async_task=task, role=Role.ASSISTANT)
    files = list(reply.attachments.all())
    assert [(f.name, f.content_type, f.size, f.user_id) for f in files] == [
        ("chart.png", "image/png", len(image), user.pk)
    ]
    # Shown like the user's: a thumbnail in the page.
    owner = Client()
    owner.force_login(user)
    page = owner.get(f"/chat/{reply.conversation_id}/").content.decode()
    assert f'src="/files/{files[0].pk}/thumbnail/"' in page


def test_a_reply_may_be_files_alone(client, sent):
    _first, second = sent
    data = base64.b64encode(PDF).decode()
    payload = completed(
        "", [{"name": "r.pdf", "content_type": "application/pdf", "data_base64": data}]
    )
    assert post_callback(client, second.async_task_id, payload).status_code == 200
    reply = Message.objects.get(async_task_id=second.async_task_id, role=Role.ASSISTANT)
    assert reply.attachments.get().name == "r.pdf"


@pytest.mark.parametrize(
    "attachments",
    [
        "not a list",
        [{"name": "x.pdf", "data_base64": "%%% not base64"}],
        [{"data_base64": base64.b64encode(PDF).decode()}],
        [
            {
                "name": "evil.png",
                "data_base64": base64.b64encode(b"MZ\x90\x00" + b"\x00" * 60).decode(),
            }
        ],
    ],
    ids=["not-a-list", "bad-base64", "no-name", "executable"],
)
def test_unusable_output_files_are_422_and_nothing_changes(client, sent, media, attachments):
    _first, second = sent
    before = sorted(p.name for p in (media / "attachments").iterdir())
    response = post_callback(client, second.async_task_id, completed("text", attachments))
    assert response.status_code == 422
    assert "error" in response.json()
    task = AsyncTask.objects.get(pk=second.async_task_id)
    assert task.status == TaskStatus.PENDING
    assert not Message.objects.filter(async_task=task, role=Role.ASSISTANT).exists()
    assert sorted(p.name for p in (media / "attachments").iterdir()) == before


def test_output_files_over_the_count_limit_are_422(client, sent, settings):
    _first, second = sent
    settings.ATTACHMENT_MAX_FILES = 1
    entry = {"name": "r.pdf", "data_base64": base64.b64encode(PDF).decode()}
    response = post_callback(client, second.async_task_id, completed("x", [entry, entry]))
    assert response.status_code == 422
