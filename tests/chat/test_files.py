"""Files in and out: uploads with a message, their limits, who may read them.

Types are read from the content (a renamed executable is refused); past a
limit the answer is 413/415 in plain words and nothing is stored, neither the
message nor any file; `/files/{id}/` is the owner's only.
"""

import hashlib
import io
import time

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from chat import services
from chat.files import links
from chat.models import Attachment, Message
from tasks.models import AsyncTask
from tests import factories

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]

JSON = {"HTTP_ACCEPT": "application/json"}
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
# The start of a Windows executable (MZ header, PE signature).
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48 + b"PE\x00\x00"


def png_bytes(size=(40, 30), color=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def conversation(user):
    return factories.conversation(user, title="Files")


def upload(name, data, content_type="application/octet-stream"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def send(client, conversation, files, content="", **extra):
    return client.post(
        f"/chat/{conversation.pk}/messages/", {"content": content, "files": files}, **extra
    )


def stored_files(media):
    folder = media / "attachments"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- uploads ---------------------------------------------------------------------------


def test_a_message_with_a_pdf_and_an_image_stores_both_with_their_hash(
    user_client, user, conversation, media
):
    image = png_bytes()
    response = send(
        user_client,
        conversation,
        [upload("report.pdf", PDF, "application/pdf"), upload("shot.png", image, "image/png")],
        "Summarise this",
        **JSON,
    )
    assert response.status_code == 201, response.content
    message = Message.objects.get()
    files = list(message.attachments.order_by("id"))
    assert [(f.name, f.content_type, f.size) for f in files] == [
        ("report.pdf", "application/pdf", len(PDF)),
        ("shot.png", "image/png", len(image)),
    ]
    assert files[0].sha256 == hashlib.sha256(PDF).hexdigest()
    assert all(f.user_id == user.pk for f in files)
    assert len(stored_files(media)) == 2
    # The user's name is never the storage name.
    assert all("report" not in f.file and "shot" not in f.file for f in files)


def test_a_message_may_be_files_alone(user_client, user):
    conversation = factories.conversation(user, title="")
    response = send(user_client, conversation, [upload("a.pdf", PDF)])
    assert response.status_code == 303
    message = Message.objects.get()
    assert message.content == ""
    assert message.attachments.count() == 1
    conversation.refresh_from_db()
    assert conversation.title == "a.pdf"


def test_the_type_is_read_from_the_content_not_the_name(user_client, conversation, media):
    response = send(
        user_client, conversation, [upload("cat.png", EXE, "image/png")], "look", **JSON
    )
    assert response.status_code == 415
    assert "cannot be attached" in response.json()["error"]
    assert not Message.objects.exists() and not Attachment.objects.exists()
    assert not AsyncTask.objects.exists()
    assert stored_files(media) == []


def test_a_file_over_the_size_limit_is_refused_with_413_and_nothing_stored(
    user_client, conversation, media, settings
):
    settings.ATTACHMENT_MAX_BYTES = 1000
    big = PDF + b"%" * 2000
    response = send(
        user_client, conversation, [upload("ok.pdf", PDF), upload("big.pdf", big)], "x", **JSON
    )
    assert response.status_code == 413
    assert "big.pdf" in response.json()["error"]
    assert "at most" in response.json()["error"]
    assert not Message.objects.exists() and stored_files(media) == []


def test_too_many_files_are_refused_with_413(user_client, conversation, media, settings):
    settings.ATTACHMENT_MAX_FILES = 2
    files = [upload(f"{i}.pdf", PDF) for i in range(3)]
    response = send(user_client, conversation, files, "x", **JSON)
    assert response.status_code == 413
    assert "at most 2" in response.json()["error"]
    assert not Message.objects.exists() and stored_files(media) == []


def test_the_page_shows_the_refusal_in_plain_words_without_javascript(user_client, conversation):
    response = send(user_client, conversation, [upload("run.png", EXE)], "hi")
    assert response.status_code == 415
    assert "cannot be attached here" in response.content.decode()


def test_text_files_are_accepted_and_typed_by_name_when_text(user_client, conversation):
    files = [
        upload("data.csv", b"a,b\n1,2\n", "text/csv"),
        upload("x.json", b'{"a": 1}', "application/json"),
        upload("notes", "héllo\n".encode(), ""),
    ]
    assert send(user_client, conversation, files, **JSON).status_code == 201
    types = list(Attachment.objects.order_by("id").values_list("content_type", flat=True))
    assert types == ["text/csv", "application/json", "text/plain"]


def test_types_outside_the_setting_are_refused(user_client, conversation, settings):
    settings.ATTACHMENT_TYPES = "image/*"
    response = send(user_client, conversation, [upload("a.pdf", PDF)], "x", **JSON)
    assert response.status_code == 415


def test_an_empty_file_is_refused_with_400(user_client, conversation):
    response = send(user_client, conversation, [upload("empty.txt", b"")], "x", **JSON)
    assert response.status_code == 400
    assert not Message.objects.exists()


def test_a_refused_send_removes_the_files_it_stored(user, conversation, media):
    factories.message(conversation, "earlier")
    # Busy: the earlier message has an unfinished task.
    services.send_message(user, conversation, "first")
    with pytest.raises(services.SendRefused):
        services.send_message(
            user, conversation, "second", files=[upload("a.pdf", PDF, "application/pdf")]
        )
    assert Attachment.objects.count() == 0
    assert stored_files(media) == []


def test_a_send_into_a_conversation_deleted_meanwhile_keeps_no_file(user, conversation, media):
    from chat.models import Conversation

    Conversation.objects.filter(pk=conversation.pk).delete()
    with pytest.raises(Conversation.DoesNotExist):
        services.send_message(user, conversation, "late", files=[upload("a.pdf", PDF)])
    assert stored_files(media) == []


def test_deleting_a_conversation_deletes_its_files_from_storage(
    user_client, conversation, media, django_capture_on_commit_callbacks
):
    send(user_client, conversation, [upload("a.pdf", PDF), upload("b.png", png_bytes())], "x")
    assert len(stored_files(media)) == 2
    image = Attachment.objects.get(name="b.png")
    assert user_client.get(f"/files/{image.pk}/thumbnail/").status_code == 200
    assert (media / "thumbnails").exists() and list((media / "thumbnails").iterdir())
    with django_capture_on_commit_callbacks(execute=True):
        response = user_client.post(f"/chat/{conversation.pk}/delete/")
    assert response.status_code == 303
    assert not Attachment.objects.exists()
    assert stored_files(media) == []
    assert list((media / "thumbnails").iterdir()) == []


# --- serving -------------------------------------------------------------------------------


@pytest.fixture
def pdf_and_png(user_client, conversation):
    send(user_client, conversation, [upload("r.pdf", PDF), upload("p.png", png_bytes())], "x")
    return Attachment.objects.get(name="r.pdf"), Attachment.objects.get(name="p.png")


def test_the_owner_downloads_a_pdf_as_an_attachment_with_nosniff(user_client, pdf_and_png):
    pdf, _png = pdf_and_png
    response = user_client.get(f"/files/{pdf.pk}/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PDF
    assert response["Content-Type"] == "application/pdf"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"].startswith("attachment")
    assert 'filename="r.pdf"' in response["Content-Disposition"]


def test_raster_images_are_inline(user_client, pdf_and_png):
    _pdf, png = pdf_and_png
    response = user_client.get(f"/files/{png.pk}/")
    assert response["Content-Disposition"].startswith("inline")
    assert response["Content-Type"] == "image/png"


def test_svg_and_html_are_never_inline(user_client, conversation):
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    html = b"<html><script>alert(1)</script></html>"
    send(user_client, conversation, [upload("x.svg", svg), upload("x.html", html)], "x")
    for attachment in Attachment.objects.all():
        response = user_client.get(f"/files/{attachment.pk}/")
        assert response["Content-Disposition"].startswith("attachment"), attachment.content_type
        assert response["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in response["Content-Security-Policy"]


def test_another_users_file_is_a_404_and_anonymous_goes_to_login(other_client, pdf_and_png):
    pdf, png = pdf_and_png
    client = Client()
    for attachment in (pdf, png):
        assert other_client.get(f"/files/{attachment.pk}/").status_code == 404
        assert other_client.get(f"/files/{attachment.pk}/thumbnail/").status_code == 404
        response = client.get(f"/files/{attachment.pk}/")
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert other_client.get("/files/999999/").status_code == 404


def test_thumbnails_are_small_webp_images(user_client, conversation):
    send(user_client, conversation, [upload("big.png", png_bytes((1600, 1200)))], "x")
    image = Attachment.objects.get()
    response = user_client.get(f"/files/{image.pk}/thumbnail/")
    assert response["Content-Type"] == "image/webp"
    with Image.open(io.BytesIO(b"".join(response.streaming_content))) as thumb:
        assert max(thumb.size) <= 320
    # Kept: the second view reads the stored one.
    assert default_storage.exists(f"thumbnails/{image.file.rsplit('/', 1)[-1]}.webp")


def test_a_pdf_has_no_thumbnail(user_client, pdf_and_png):
    pdf, _png = pdf_and_png
    assert user_client.get(f"/files/{pdf.pk}/thumbnail/").status_code == 404


def test_the_page_shows_a_thumbnail_and_a_download_chip(user_client, conversation, pdf_and_png):
    pdf, png = pdf_and_png
    page = user_client.get(f"/chat/{conversation.pk}/").content.decode()
    assert f'src="/files/{png.pk}/thumbnail/"' in page
    assert f'href="/files/{pdf.pk}/" download' in page
    assert 'name="files"' in page and 'enctype="multipart/form-data"' in page


# --- signed links ---------------------------------------------------------------------------


def test_a_signed_link_opens_the_file_without_a_session(pdf_and_png):
    pdf, _png = pdf_and_png
    url = links.url(pdf.pk, 7, time.time() + 60)
    response = Client().get(path_of(url))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PDF


def path_of(url):
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_an_expired_or_foreign_or_tampered_signature_is_403(pdf_and_png):
    pdf, png = pdf_and_png
    client = Client()
    expired = links.url(pdf.pk, 7, time.time() - 1)
    assert client.get(path_of(expired)).status_code == 403
    other_file = links.url(png.pk, 7, time.time() + 60)
    assert client.get(f"/files/{pdf.pk}/?{path_of(other_file).split('?')[1]}").status_code == 403
    good = path_of(links.url(pdf.pk, 7, time.time() + 60))
    assert client.get(good[:-2] + "xx").status_code == 403
    assert client.get(f"/files/{pdf.pk}/?sig=").status_code == 403


# --- export ------------------------------------------------------------------------------


def read(response):
    # An async iterator (how it streams under ASGI), consumed here.
    with pytest.warns(Warning, match="consume asynchronous iterators"):
        return b"".join(response).decode()


def test_the_exports_list_the_files(user_client, conversation, pdf_and_png):
    import json

    pdf, png = pdf_and_png
    data = json.loads(read(user_client.get(f"/chat/{conversation.pk}/export/?format=json")))
    files = data["messages"][0]["attachments"]
    assert [(f["id"], f["name"], f["content_type"], f["size"]) for f in files] == [
        (pdf.pk, "r.pdf", "application/pdf", len(PDF)),
        (png.pk, "p.png", "image/png", png.size),
    ]
    assert files[0]["sha256"] == hashlib.sha256(PDF).hexdigest()
    markdown = read(user_client.get(f"/chat/{conversation.pk}/export/?format=md"))
    assert "- `r.pdf` (application/pdf" in markdown and "- `p.png` (image/png" in markdown


def test_a_file_name_cannot_break_out_of_the_markdown_export(user_client, conversation):
    send(user_client, conversation, [upload("a`\nb.pdf", PDF)], "x")
    markdown = read(user_client.get(f"/chat/{conversation.pk}/export/?format=md"))
    assert "- `a_" in markdown


def test_the_admin_shows_a_messages_files_read_only(admin_client, pdf_and_png):
    pdf, _png = pdf_and_png
    page = admin_client.get(f"/admin/chat/message/{pdf.message_id}/change/").content.decode()
    assert "r.pdf" in page and pdf.sha256 in page
    assert 'name="attachments-0-name"' not in page  # not editable


@pytest.mark.django_db(transaction=True)
def test_a_delete_racing_uploads_leaves_no_file_behind(make_user, media, monkeypatch):
    # Real threads with their own connections: sends with files against the
    # deletion of their conversation, several rounds. Whichever commits first,
    # afterwards no stored file lacks its row and no row lacks its file.
    import threading

    from django.db import connection

    import tasks.outbound.dispatch
    from chat.models import Conversation

    monkeypatch.setattr(tasks.outbound.dispatch, "schedule_dispatch", lambda task_id: None)
    owner = make_user("racing-files")
    for round_ in range(4):
        conversation = factories.conversation(owner, title=f"race {round_}")
        barrier = threading.Barrier(3)
        outcomes = []

        def send(i, conversation=conversation, barrier=barrier, outcomes=outcomes):
            try:
                barrier.wait(timeout=10)
                files = [upload(f"{i}.pdf", PDF), upload(f"{i}.png", png_bytes())]
                services.send_message(owner, conversation, f"files {i}", files=files)
                outcomes.append("sent")
            except (services.SendRefused, Conversation.DoesNotExist) as refused:
                outcomes.append(type(refused).__name__)
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                outcomes.append(repr(exc))
            finally:
                connection.close()

        def delete(conversation=conversation, barrier=barrier, outcomes=outcomes):
            try:
                barrier.wait(timeout=10)
                services.delete_conversation(owner, conversation)
                outcomes.append("deleted")
            finally:
                connection.close()

        threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
        threads.append(threading.Thread(target=delete))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert "deleted" in outcomes
        assert all(o in ("sent", "SendRefused", "DoesNotExist", "deleted") for o in outcomes), (
            outcomes
        )
    rows = set(Attachment.objects.values_list("file", flat=True))
    stored = {f"attachments/{name}" for name in stored_files(media)}
    assert stored == rows
    assert not Conversation.objects.filter(user=owner).exists()
    assert rows == set()
