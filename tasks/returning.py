"""The rows of the door's `UPDATE … RETURNING` as AsyncTask instances.

`QuerySet.raw()` would do, but it works out the column mapping and the
converters anew on every call; for the hottest statement of the app (every
callback is one) that work is done once per database here, and each row is
converted the way the ORM converts a query's columns (JSON, times on SQLite).
"""

from functools import lru_cache

from django.db import connections

from .models import AsyncTask


@lru_cache(maxsize=8)
def _shape(alias):
    """(the column list to return, the attribute names, the converters by index)."""
    connection = connections[alias]
    fields = AsyncTask._meta.concrete_fields
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    converters = []
    for index, field in enumerate(fields):
        column = field.get_col(AsyncTask._meta.db_table)
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if found:
            converters.append((index, column, found))
    return columns, [field.attname for field in fields], converters


def columns(alias) -> str:
    """Every column of `async_tasks`, in the order `tasks()` reads them."""
    return _shape(alias)[0]


def tasks(sql, params, alias) -> list[AsyncTask]:
    """Run `sql` (which returns `columns(alias)`) and build a task of each row."""
    _columns, names, converters = _shape(alias)
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    built = []
    for row in rows:
        values = list(row)
        for index, column, functions in converters:
            for function in functions:
                values[index] = function(values[index], column, connection)
        built.append(AsyncTask.from_db(alias, names, values))
    return built
