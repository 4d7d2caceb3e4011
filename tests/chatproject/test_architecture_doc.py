"""docs/ARCHITECTURE.md names every module of the product packages, and only real ones.

A module added, moved or renamed without its line in the architecture page
fails here, and so does a path the page still names after it is gone.
"""

import re

from tests.support import BASE_DIR

DOC = BASE_DIR / "docs" / "ARCHITECTURE.md"
PACKAGES = ("accounts", "chat", "chatproject", "live", "n8n", "observability", "tasks")
# A module path as the page writes it: `tasks/door.py`, `chat/search/sql.py` (not a
# path inside another folder: tests/chatproject/… names no module of chatproject/).
MODULE_PATH = re.compile(rf"(?<![\w/])(?:{'|'.join(PACKAGES)})/[\w/]*\w\.py\b")


def product_modules(base=BASE_DIR):
    """Every module of the product packages but `__init__.py` and migrations."""
    found = set()
    for package in PACKAGES:
        for path in (base / package).rglob("*.py"):
            relative = path.relative_to(base)
            if path.name == "__init__.py" or "migrations" in relative.parts:
                continue
            found.add(relative.as_posix())
    return found


def named_paths(text):
    return set(MODULE_PATH.findall(text))


def test_every_module_is_named_in_the_architecture_page():
    missing = sorted(product_modules() - named_paths(DOC.read_text()))
    assert not missing, f"docs/ARCHITECTURE.md does not name: {', '.join(missing)}"


def test_every_module_the_architecture_page_names_exists():
    gone = sorted(path for path in named_paths(DOC.read_text()) if not (BASE_DIR / path).is_file())
    assert not gone, f"docs/ARCHITECTURE.md names modules that do not exist: {', '.join(gone)}"


def test_the_module_pattern_reads_nested_paths_whole():
    text = "`chat/search/sql.py`, `tasks/management/commands/tasks_worker.py`; not n8n/*.json"
    assert named_paths(text) == {
        "chat/search/sql.py",
        "tasks/management/commands/tasks_worker.py",
    }


# A folder is a concern: past this many modules at one level, a group among
# them is a package waiting for its name (docs/ARCHITECTURE.md, "The packages").
MODULES_PER_FOLDER_MAX = 18


def test_no_folder_of_the_product_holds_more_than_eighteen_modules():
    crowded = {}
    for package in PACKAGES:
        for folder in [BASE_DIR / package, *(BASE_DIR / package).rglob("*/")]:
            if not folder.is_dir() or folder.name in {"migrations", "__pycache__"}:
                continue
            modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
            if len(modules) > MODULES_PER_FOLDER_MAX:
                crowded[folder.relative_to(BASE_DIR).as_posix()] = len(modules)
    assert not crowded, f"folders over {MODULES_PER_FOLDER_MAX} modules: {crowded}"
