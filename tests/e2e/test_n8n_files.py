"""Files through a real n8n (each version of N8N_VERSIONS): a message's files
reach the workflow as `input.attachments`, n8n's HTTP Request node downloads
them through their signed links (no session), and the file the workflow
returns in `output.attachments` is stored and shown with its reply. The
shipped workflows read what they download: a PDF's text (n8n's Extract from
File) into the prompt, an image to the model as an image part.
Skips on a laptop without n8n; fails under CI=true."""

import base64

import pytest
import requests

from chat.files import records
from chat.models import Attachment, Conversation, Message, Role
from tasks import services
from tests.e2e import model_standin
from tests.e2e.n8n_support import SECRET, project_server
from tests.e2e.test_n8n_e2e import _form_post, reply_to, sign_up
from tests.task_support import chat_task, wait_for_status

pytestmark = [pytest.mark.n8n, pytest.mark.django_db(transaction=True)]

# A file that starts like a PDF and is none: nothing can read its text.
PDF = b"%PDF-1.4\n% pdf words for n8n\n%%EOF\n"
TEXT = "plain words 4711 for n8n\n"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
PDF_LINES = ["Quarterly tide report 8213", "The moon pulls the sea twice a day."]


def tiny_pdf(lines, per_page=45) -> bytes:
    """A valid PDF whose text is `lines` (Helvetica, `per_page` lines a page)."""

    def escaped(line):
        return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    pages = [lines[i : i + per_page] for i in range(0, len(lines), per_page)] or [[]]
    first = 4  # objects 1-3: catalog, page tree, font; then a page and its content each
    kids = " ".join(f"{first + 2 * n} 0 R" for n in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for n, page in enumerate(pages):
        text = " T* ".join(f"({escaped(line)}) Tj" for line in page)
        stream = f"BT /F1 12 Tf 14 TL 72 720 Td {text} ET".encode("latin-1")
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (first + 2 * n + 1)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def send_files(server, username, content, files):
    """Sign up, open a conversation and send `content` with `files` through the
    form; the conversation."""
    session = sign_up(server, username)
    _form_post(session, f"{server.base_url}/chat/new/", {"title": "Files"})
    conversation = Conversation.objects.get(user__username=username)
    page = f"{server.base_url}/chat/{conversation.pk}/"
    session.get(page)
    response = session.post(
        f"{page}messages/",
        data={"content": content, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        files=[("files", entry) for entry in files],
        allow_redirects=False,
    )
    assert response.status_code == 303, response.text[:500]
    return conversation


def serving(n8n, django_db_blocker, media, workflow):
    """The app on its own port, answering through `workflow`, its files in `media`."""
    with django_db_blocker.unblock():
        server = project_server(
            n8n, N8N_CHAT_WORKFLOW=workflow, MEDIA_ROOT=str(media), TASKS_WORKER_IN_PROCESS="1"
        )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """One folder of files for every server of this module, as every process of
    a deployment shares one storage: the servers share the database, so the
    worker of any of them may dispatch a message's task, and the link it signs
    (to its own address) must find the file there. A folder per server made
    such a download a 404 whenever another server's worker won the task."""
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def files_server(n8n, django_db_setup, django_db_blocker, media):
    yield from serving(n8n, django_db_blocker, media, "chat-files")


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
def offline_server(n8n, django_db_setup, django_db_blocker, media):
    yield from serving(n8n, django_db_blocker, media, "chat-reply-offline")


def test_the_shipped_workflow_reads_text_and_pdf_files_and_names_what_it_cannot(offline_server):
    pdf = tiny_pdf(PDF_LINES)
    conversation = send_files(
        offline_server,
        "shipped-files",
        "",
        [
            ("notes.txt", TEXT.encode(), "text/plain"),
            ("dot.png", PNG, "image/png"),
            ("report.pdf", pdf, "application/pdf"),
            ("broken.pdf", PDF, "application/pdf"),
        ],
    )
    [reply] = reply_to(conversation.pk, timeout=60)
    assert "Files read by n8n" in reply.content
    assert "plain words 4711" in reply.content  # a text file's content, downloaded
    assert "dot.png (an image" in reply.content
    # The PDF's text, read by n8n's Extract from File, in its place among the files.
    assert f"report.pdf (a PDF, {len(pdf)} bytes)" in reply.content
    assert all(line in reply.content for line in PDF_LINES)
    assert reply.content.index("dot.png") < reply.content.index(PDF_LINES[0])
    # A PDF nothing can read is named, and the reply still comes.
    assert f"broken.pdf (a PDF, {len(PDF)} bytes) could not be read" in reply.content
    assert "pdf words for n8n" not in reply.content


def test_a_file_that_cannot_be_downloaded_is_named_and_the_reply_comes(
    offline_server, media, n8n, settings, user
):
    """A link that answers 404 (the file gone) fails that download only, after n8n's
    retries: the file is named "could not be downloaded", the others are read."""
    settings.N8N_BASE_URL = n8n.base_url
    settings.N8N_WEBHOOK_SECRET = SECRET
    settings.PUBLIC_BASE_URL = offline_server.base_url
    task = chat_task(user, "one file is gone", workflow_id="chat-reply-offline")
    message = Message.objects.get(async_task=task)
    (media / "attachments").mkdir(exist_ok=True)
    (media / "attachments" / "here.txt").write_bytes(TEXT.encode())
    here = Attachment.objects.create(
        message=message,
        user=user,
        file="attachments/here.txt",
        name="notes.txt",
        content_type="text/plain",
        size=len(TEXT),
        sha256="0" * 64,
    )
    gone = {"id": here.pk + 1000, "name": "gone.pdf", "content_type": "application/pdf"}
    task.input_data["attachments"] = [{**gone, "size": 10}, records.record(here)]
    task.save(update_fields=["input_data"])
    services.claim_and_dispatch(task.pk)  # or the server's worker does
    task = wait_for_status(task.pk, {"completed", "failed", "timeout"}, timeout=60)
    assert task.status == "completed", task.error_details
    reply = Message.objects.get(async_task=task, role=Role.ASSISTANT)
    assert "gone.pdf could not be downloaded" in reply.content
    assert "plain words 4711" in reply.content


@pytest.fixture(scope="module")
def model_server(n8n, django_db_setup, django_db_blocker, media):
    yield from serving(n8n, django_db_blocker, media, "chat-reply")


def test_the_model_gets_the_pdfs_text_in_the_prompt_and_the_image_as_an_image(model_server, model):
    pdf = tiny_pdf(PDF_LINES)
    conversation = send_files(
        model_server,
        "vision-files",
        "What do these say?",
        [("report.pdf", pdf, "application/pdf"), ("dot.png", PNG, "image/png")],
    )
    [reply] = reply_to(conversation.pk, timeout=60)
    assert reply.content.startswith(model_standin.REPLY_PREFIX)
    assert "What do these say?" in reply.content
    assert reply.thinking == model_standin.THINKING

    [request] = model.completions()
    parts = model_standin.user_parts(request["body"]["messages"])
    prompt = "\n".join(p.get("text", "") for p in parts if p.get("type") == "text")
    # n8n downloaded the PDF through its signed link and read its text out.
    assert "Files sent with the message" in prompt
    assert f"report.pdf (a PDF, {len(pdf)} bytes)" in prompt
    assert all(line in prompt for line in PDF_LINES)
    assert "dot.png (an image" in prompt
    # The image reached the model as an image part of a user message, the PNG's bytes.
    images = [p["image_url"]["url"] for p in parts if p.get("type") == "image_url"]
    assert images == ["data:image/png;base64," + base64.b64encode(PNG).decode()]
    # Neither the PDF's bytes nor its text went as a part of their own.
    assert not any(p.get("type") not in ("text", "image_url") for p in parts)
    assert sum(PDF_LINES[0] in p.get("text", "") for p in parts) == 1


def test_a_long_pdfs_text_reaches_the_model_cut_at_20000_characters(model_server, model):
    model.piece_seconds = 0  # the stand-in echoes the whole prompt back
    lines = [f"Line {n:04d} of the long report, with a few more words." for n in range(1, 501)]
    pdf = tiny_pdf(lines)
    conversation = send_files(
        model_server, "long-pdf", "Summarise", [("long.pdf", pdf, "application/pdf")]
    )
    [reply] = reply_to(conversation.pk, timeout=90)
    assert reply.content.startswith(model_standin.REPLY_PREFIX)

    [request] = model.completions()
    parts = model_standin.user_parts(request["body"]["messages"])
    prompt = "\n".join(p.get("text", "") for p in parts if p.get("type") == "text")
    header = f"long.pdf (a PDF, {len(pdf)} bytes)\n"
    assert header in prompt
    text = prompt.split(header, 1)[1]
    assert text.startswith("Line 0001 of the long report")
    assert len(text) == 20000
    assert "Line 0300" in text and "Line 0500" not in prompt
