"""Every setting read from the environment is listed in `.env.example` and in
docs/OPERATIONS.md's settings table, and the two lists are the same."""

import re

from tests.support import BASE_DIR

SETTINGS = BASE_DIR / "chatproject" / "settings.py"
ENV_EXAMPLE = BASE_DIR / ".env.example"
OPERATIONS = BASE_DIR / "docs" / "OPERATIONS.md"

# `env.int("NAME", …)`, `env.str("NAME")`, and the settings' own comma-list helper.
READ = re.compile(r"""\b(?:env\.\w+|_comma_list)\(\s*["']([A-Z][A-Z0-9_]*)["']""")
# `NAME=…` or `# NAME=…` at the start of a line.
EXAMPLE_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)
NAME = re.compile(r"`([A-Z][A-Z0-9_]*)`")


def settings_read():
    return set(READ.findall(SETTINGS.read_text()))


def env_example_names():
    return set(EXAMPLE_LINE.findall(ENV_EXAMPLE.read_text()))


def operations_table_names():
    """The variables in the first column of the table under "## Settings"."""
    text = OPERATIONS.read_text()
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        cells = line.split("|")
        if line.startswith("|") and len(cells) > 2:
            names.update(NAME.findall(cells[1]))
    return names


def test_settings_reads_variables():
    assert {"SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS", "N8N_BASE_URL"} <= settings_read()


def test_every_setting_is_in_env_example():
    missing = sorted(settings_read() - env_example_names())
    assert not missing, f".env.example lacks: {', '.join(missing)}"


def test_every_setting_is_in_the_operations_table():
    missing = sorted(settings_read() - operations_table_names())
    assert not missing, f"docs/OPERATIONS.md's settings table lacks: {', '.join(missing)}"


def test_the_operations_table_matches_env_example():
    table, example = operations_table_names(), env_example_names()
    assert table - example == set(), f"only in docs/OPERATIONS.md: {sorted(table - example)}"
    assert example - table == set(), f"only in .env.example: {sorted(example - table)}"
