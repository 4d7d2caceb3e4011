"""The database side of search: GIN expression indexes on PostgreSQL, FTS5
tables with triggers on SQLite (see chat/search/sql.py for the queries).

The GIN indexes are written through (`fastupdate = off`): by default
PostgreSQL queues new entries in a pending list that every search then reads
from start to end until a vacuum merges it (up to 4 MB; after the bench's
bulk load, 486 pages and 2 ms per search); written through, a message's
insert costs a little more (up to a millisecond for a few hundred words) and
every search reads only the index.

SQLite drops a table's triggers when Django rebuilds the table (its way of
altering a column), so after every `migrate` `ensure()` puts back whatever is
missing and rebuilds the FTS5 index from the tables when it had to.
"""

MIGRATION = "0004_search_indexes"

POSTGRES_INDEXES = ["chat_msg_content_fts", "chat_conv_title_fts"]
POSTGRES = [
    "CREATE INDEX IF NOT EXISTS chat_msg_content_fts ON chat_messages "
    "USING GIN (to_tsvector('english', content)) WITH (fastupdate = off)",
    "CREATE INDEX IF NOT EXISTS chat_conv_title_fts ON chat_conversations "
    "USING GIN (to_tsvector('english', title)) WITH (fastupdate = off)",
]
POSTGRES_DROP = [
    "DROP INDEX IF EXISTS chat_msg_content_fts",
    "DROP INDEX IF EXISTS chat_conv_title_fts",
]

# (FTS5 table, source table, column)
_SQLITE_TABLES = [
    ("chat_messages_fts", "chat_messages", "content"),
    ("chat_conversations_fts", "chat_conversations", "title"),
]


def _sqlite_statements(fts, table, column):
    tables = [
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING fts5({column}, content='{table}', "
        f"content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')"
    ]
    triggers = {
        f"{fts}_ai": f"AFTER INSERT ON {table} BEGIN "
        f"INSERT INTO {fts}(rowid, {column}) VALUES (new.id, new.{column}); END",
        f"{fts}_ad": f"AFTER DELETE ON {table} BEGIN "
        f"INSERT INTO {fts}({fts}, rowid, {column}) VALUES ('delete', old.id, old.{column}); END",
        f"{fts}_au": f"AFTER UPDATE OF {column} ON {table} BEGIN "
        f"INSERT INTO {fts}({fts}, rowid, {column}) VALUES ('delete', old.id, old.{column}); "
        f"INSERT INTO {fts}(rowid, {column}) VALUES (new.id, new.{column}); END",
    }
    return tables, triggers


def ensure(connection) -> bool:
    """Create what is missing; True when something was (and the index rebuilt)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for sql in POSTGRES:
                cursor.execute(sql)
        return False
    if connection.vendor != "sqlite":
        return False
    changed = False
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')")
        present = {row[0] for row in cursor.fetchall()}
        for fts, table, column in _SQLITE_TABLES:
            if table not in present:
                continue
            tables, triggers = _sqlite_statements(fts, table, column)
            missing = [name for name in [fts, *triggers] if name not in present]
            if not missing:
                continue
            for sql in tables:
                cursor.execute(sql)
            for name, body in triggers.items():
                cursor.execute(f"CREATE TRIGGER IF NOT EXISTS {name} {body}")
            cursor.execute(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")
            changed = True
    return changed


def drop(connection) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for sql in POSTGRES_DROP:
                cursor.execute(sql)
        elif connection.vendor == "sqlite":
            for fts, table, column in _SQLITE_TABLES:
                for name in _sqlite_statements(fts, table, column)[1]:
                    cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
                cursor.execute(f"DROP TABLE IF EXISTS {fts}")


def write_through(connection, on=True) -> None:
    """PostgreSQL: GIN indexes without a pending list (`on`), its entries
    merged into the index now; or back to PostgreSQL's default. Nothing to
    do elsewhere."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for name in POSTGRES_INDEXES:
            if on:
                cursor.execute(f"ALTER INDEX IF EXISTS {name} SET (fastupdate = off)")
                cursor.execute("SELECT to_regclass(%s)", [name])
                if cursor.fetchone()[0] is not None:
                    cursor.execute("SELECT gin_clean_pending_list(%s::regclass)", [name])
            else:
                cursor.execute(f"ALTER INDEX IF EXISTS {name} RESET (fastupdate)")
