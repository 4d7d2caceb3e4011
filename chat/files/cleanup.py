"""Stored files without their row: found and removed (`manage.py clean_files`).

A send writes its files to storage before the transaction that creates their
`chat_attachments` rows (chat/files/store.py); a failed send removes them
again, but a process killed in between (kill -9, a machine lost) cannot, and a
row deleted just before its process dies keeps its file too. Such a file is
never served (nothing points at it); it only takes space. `sweep` lists the
storage first and reads the rows second, so a send that commits while it runs
keeps its file, and it removes only files older than `older_than` (a send in
progress has a file and no row yet): the default, an hour, is far beyond any
send. Thumbnails whose file is no longer a row's go with them. Rows whose file
is missing are counted, never changed (their page shows the file as gone: 404).
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.core.files.storage import default_storage

from . import store, thumbnails

BATCH = 1000


@dataclass
class Sweep:
    stored: int = 0  # files under attachments/
    orphans: list[str] = field(default_factory=list)  # files without a row
    old_orphans: list[str] = field(default_factory=list)  # …older than older_than
    thumbnails: list[str] = field(default_factory=list)  # thumbnails of no row's file
    removed: int = 0
    rows: int = 0
    rows_without_file: list[int] = field(default_factory=list)  # attachment ids


def _listed(folder: str) -> list[str]:
    """The files directly under `folder` in the default storage, as storage names."""
    try:
        _folders, names = default_storage.listdir(folder)
    except FileNotFoundError:  # nothing was ever stored
        return []
    return sorted(f"{folder}/{name}" for name in names)


def _older(name: str, cutoff: datetime) -> bool:
    try:
        modified = default_storage.get_modified_time(name)
    except (FileNotFoundError, OSError):
        return False  # gone meanwhile: nothing to remove
    if modified.tzinfo is None:
        modified = modified.replace(tzinfo=UTC)
    return modified <= cutoff


def _with_rows(names: list[str]) -> set[str]:
    from ..models import Attachment

    found = set()
    for start in range(0, len(names), BATCH):
        chunk = names[start : start + BATCH]
        found.update(Attachment.objects.filter(file__in=chunk).values_list("file", flat=True))
    return found


def sweep(older_than: timedelta = timedelta(hours=1), dry_run: bool = False) -> Sweep:
    """Find the stored files no row names and remove those older than
    `older_than` (with `dry_run`, only count them)."""
    from ..models import Attachment

    cutoff = datetime.now(UTC) - older_than
    result = Sweep()
    # The listing comes before the rows are read: a row committed meanwhile is seen.
    names = _listed(store.FOLDER)
    thumbs = _listed(thumbnails.FOLDER)
    result.stored = len(names)
    kept = _with_rows(names)
    result.orphans = [name for name in names if name not in kept]
    result.old_orphans = [name for name in result.orphans if _older(name, cutoff)]
    # A thumbnail is named after its file's last part (chat/files/thumbnails.py).
    kept_thumbs = {thumbnails.name_for(name) for name in kept}
    result.thumbnails = [
        name for name in thumbs if name not in kept_thumbs and _older(name, cutoff)
    ]
    listed = set(names)
    for pk, name in Attachment.objects.order_by("pk").values_list("pk", "file").iterator():
        result.rows += 1
        if name not in listed and not default_storage.exists(name):
            result.rows_without_file.append(pk)
    if not dry_run:
        for name in result.old_orphans:
            # Asked again just before: a file never goes while a row names it.
            if not Attachment.objects.filter(file=name).exists():
                store.delete_file(name)
                result.removed += 1
        for name in result.thumbnails:
            store.delete_file(name)
            result.removed += 1
    return result
