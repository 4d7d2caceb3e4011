"""`manage.py clean_files`: stored files no row names (a process killed between
writing a file and committing its row) are removed once older than
--older-than; a row's file never is; rows without their file are reported."""

import io
import os
import time

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from chat.files import cleanup, store, thumbnails
from chat.models import Attachment
from tests import factories

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]


def stored(data=b"some bytes", minutes_ago=0, name=None) -> str:
    """A file in storage, last written `minutes_ago`."""
    name = default_storage.save(name or store.storage_name("text/plain"), ContentFile(data))
    if minutes_ago:
        then = time.time() - minutes_ago * 60
        os.utime(default_storage.path(name), (then, then))
    return name


def row(user, name) -> Attachment:
    message = factories.message(factories.conversation(user))
    return Attachment.objects.create(
        message=message,
        user=user,
        file=name,
        name="notes.txt",
        content_type="text/plain",
        size=default_storage.size(name) if default_storage.exists(name) else 1,
        sha256="0" * 64,
    )


def clean(*args) -> str:
    out = io.StringIO()
    call_command("clean_files", *args, stdout=out)
    return out.getvalue()


def test_old_files_without_a_row_go_and_a_rows_file_stays(user):
    kept = stored(minutes_ago=600)
    row(user, kept)
    old = stored(minutes_ago=61)
    fresh = stored(minutes_ago=5)  # a send still in progress, perhaps

    output = clean()

    assert default_storage.exists(kept)
    assert not default_storage.exists(old)
    assert default_storage.exists(fresh)
    assert "3 stored files, 1 rows; 2 files without a row, 1 of them older than 60 minutes" in (
        output
    )
    assert "removed 1;" in output
    assert "0 rows without their file" in output


def test_dry_run_counts_and_removes_nothing(user):
    old = stored(minutes_ago=120)
    output = clean("--dry-run", "-v", "2")
    assert default_storage.exists(old)
    assert f"would remove {old}" in output
    assert "would remove 1;" in output


def test_older_than_sets_the_age(user):
    recent = stored(minutes_ago=3)
    assert "0 of them older than 5 minutes" in clean("--older-than", "5")
    assert default_storage.exists(recent)
    assert "removed 1;" in clean("--older-than", "2")
    assert not default_storage.exists(recent)
    assert "0 stored files" in clean("--older-than", "0")


def test_thumbnails_of_files_that_are_gone_go_and_a_rows_thumbnail_stays(user):
    kept = stored(minutes_ago=90)
    row(user, kept)
    kept_thumb = stored(name=thumbnails.name_for(kept), minutes_ago=90)
    gone_thumb = stored(name=thumbnails.name_for(store.storage_name("image/png")), minutes_ago=90)

    assert "1 thumbnails of no file; removed 1;" in clean()

    assert default_storage.exists(kept_thumb)
    assert not default_storage.exists(gone_thumb)


def test_a_row_without_its_file_is_reported_and_kept(user):
    missing = row(user, store.storage_name("text/plain"))
    assert "1 rows without their file" in clean()
    assert Attachment.objects.filter(pk=missing.pk).exists()
    assert cleanup.sweep().rows_without_file == [missing.pk]


def test_a_row_that_comes_after_the_listing_keeps_its_file(user, monkeypatch):
    """The send's row commits while the sweep runs: its file is not removed."""
    name = stored(minutes_ago=120)
    listed = cleanup._with_rows

    def rows_then_a_send_commits(names):
        found = listed(names)
        row(user, name)
        return found

    monkeypatch.setattr(cleanup, "_with_rows", rows_then_a_send_commits)
    result = cleanup.sweep()
    assert result.old_orphans == [name]
    assert result.removed == 0
    assert default_storage.exists(name)


def test_an_empty_storage_is_fine():
    assert "0 stored files, 0 rows; 0 files without a row" in clean()


def test_a_negative_age_is_refused():
    with pytest.raises(CommandError, match="--older-than"):
        clean("--older-than", "-1")
