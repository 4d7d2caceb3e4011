"""Queries the ORM compiles once and a hot path runs many times.

A send, a callback and a streamed piece run the same few query shapes with
different values. Building a query through the ORM (resolving its
expressions, compiling its SQL) costs more CPU than the database spends
running it. `compile_queryset()` builds one with stand-ins where a call's
values go and keeps its SQL, its parameters and the columns' converters;
`Compiled.rows()` runs it with the values of the call. The query itself, and
so every rule written in it, stays written once, with the ORM; callers cache
the result per database and shape (`functools.lru_cache`).

Stand-ins are values no call passes: negative integers (ids are positive) in
the range of a 32-bit integer (the ORM compiles a lookup whose value its
field cannot hold into "no rows"), and text holding NUL (which no database
text holds).
"""

from dataclasses import dataclass

from django.db import connections

_STAND_IN_BASE = -2_000_000_000


def stand_in(number: int) -> int:
    """The `number`th integer stand-in."""
    return _STAND_IN_BASE - number


def text_stand_in(name: str) -> str:
    return f"\x00{name}\x00"


def given(param, values):
    """A compiled parameter, or the value given for its stand-in (wrapped as
    the compiler wrapped the stand-in: psycopg's Int4 on PostgreSQL, say)."""
    if isinstance(param, str | int) and not isinstance(param, bool) and param in values:
        value = values[param]
        return value if type(param) in (str, int) or value is None else type(param)(value)
    return param


@dataclass(frozen=True)
class Compiled:
    """A query's SQL and parameters as the ORM compiled them, the names of its
    columns (a field's attname, or an annotation's name) and the expressions
    whose converters turn what the database returns into Python values."""

    alias: str
    sql: str
    params: tuple
    names: tuple
    expressions: tuple

    def bind(self, values) -> list:
        """The parameters with each stand-in replaced by its value in `values`."""
        return [given(param, values) for param in self.params]

    def rows(self, values) -> list[dict]:
        """Run the query with `values` (stand-in → value): each row as a dict."""
        connection = connections[self.alias]
        converters = []
        for index, expression in enumerate(self.expressions):
            found = connection.ops.get_db_converters(expression)
            found += expression.get_db_converters(connection)
            if found:
                converters.append((index, found, expression))
        with connection.cursor() as cursor:
            cursor.execute(self.sql, self.bind(values))
            fetched = cursor.fetchall()
        rows = []
        for row in fetched:
            row = list(row)
            for index, found, expression in converters:
                value = row[index]
                for converter in found:
                    value = converter(value, expression, connection)
                row[index] = value
            rows.append(dict(zip(self.names, row, strict=True)))
        return rows

    def instances(self, model, values) -> list:
        """Run the query (one that selects `model`'s concrete fields, and maybe
        annotations) and make each row an instance: annotations become
        attributes, as the ORM sets them."""
        attnames = [field.attname for field in model._meta.concrete_fields]
        made = []
        for row in self.rows(values):
            instance = model.from_db(self.alias, attnames, [row[name] for name in attnames])
            for name in self.names:
                if name not in attnames:
                    setattr(instance, name, row[name])
            made.append(instance)
        return made


def compile_queryset(queryset, stand_ins=()) -> Compiled:
    """Compile `queryset` once. Every value of `stand_ins` must reach the
    compiled parameters (else a call's value would be lost: AssertionError)."""
    alias = queryset.db
    compiler = queryset.query.get_compiler(using=alias)
    sql, params = compiler.as_sql()
    names, expressions = [], []
    for expression, _sql, name in compiler.select:
        names.append(name or expression.target.attname)
        expressions.append(expression)
    compiled_values = {p for p in params if isinstance(p, str | int)}
    missing = set(stand_ins) - compiled_values
    assert not missing, f"the compiled query lost its stand-ins {missing}"
    return Compiled(alias, sql, tuple(params), tuple(names), tuple(expressions))
