"""Queries the ORM compiles once and a hot path runs many times.

A send, a callback and a streamed piece run the same few query shapes with
different values. Building a query through the ORM (resolving its
expressions, compiling its SQL) costs more CPU than the database spends
running it. `compile_queryset()` builds one with stand-ins where a call's
values go and keeps its SQL, its parameters and the columns' converters;
`Compiled.rows()` runs it with the values of the call. The query itself, and
so every rule written in it, stays written once, with the ORM; callers cache
the result per database and shape (`functools.lru_cache`).

An UPDATE works the same way: `compile_update()` compiles the UPDATE of a
queryset's rows with stand-ins in its filters and its new values, and records
which parameter each named value of a call goes to (its slots);
`CompiledUpdate.bind()` fills them, each prepared as the ORM prepares it: by
the field it is saved into (`get_db_prep_save`: a datetime, JSON) or, for an
id or text, wrapped as the compiler wrapped the stand-in (psycopg's Int4, say).
The door's change of a task and its streamed pieces, and a reply's update of
its conversation, are such UPDATEs.

Stand-ins are values no call passes: negative integers (ids are positive) in
the range of a 32-bit integer (the ORM compiles a lookup whose value its
field cannot hold into "no rows"), text holding NUL (which no database text
holds) and datetimes in 1900 (when nothing here was written). Each stand-in of
a statement must differ from the others and from its fixed parameters.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property

from django.db import connections
from django.db.models.sql import UpdateQuery

_STAND_IN_BASE = -2_000_000_000


def stand_in(number: int) -> int:
    """The `number`th integer stand-in."""
    return _STAND_IN_BASE - number


def text_stand_in(name: str) -> str:
    return f"\x00{name}\x00"


def datetime_stand_in(number: int) -> datetime:
    """The `number`th datetime stand-in (a microsecond of 1 January 1900, UTC)."""
    return datetime(1900, 1, 1, microsecond=number, tzinfo=UTC)


class LostStandIn(AssertionError):
    """A stand-in did not come out of the compiler as a parameter of its own:
    the statement would ignore a call's value."""


def given(param, values):
    """A compiled parameter, or the value given for its stand-in (wrapped as
    the compiler wrapped the stand-in: psycopg's Int4 on PostgreSQL, say)."""
    if isinstance(param, str | int) and not isinstance(param, bool) and param in values:
        return _wrapped_like(param, values[param])
    return param


def _wrapped_like(stand_in, value):
    """`value` wrapped as the compiler wrapped `stand_in` (psycopg's Int4 on
    PostgreSQL, say); None and plain ints and texts as they are."""
    if value is None or type(stand_in) in (str, int):
        return value
    return type(stand_in)(value)


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

    @cached_property
    def converters(self) -> tuple:
        """(index, converters, expression) of each column that has converters:
        they depend on the expression and the database only, so they are
        worked out on the first run (as `update_returning` does its own)."""
        connection = connections[self.alias]
        converters = []
        for index, expression in enumerate(self.expressions):
            found = connection.ops.get_db_converters(expression)
            found += expression.get_db_converters(connection)
            if found:
                converters.append((index, tuple(found), expression))
        return tuple(converters)

    def rows(self, values) -> list[dict]:
        """Run the query with `values` (stand-in → value): each row as a dict."""
        connection = connections[self.alias]
        converters = self.converters
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
    if missing:
        raise LostStandIn(f"the compiled query lost its stand-ins {missing}")
    return Compiled(alias, sql, tuple(params), tuple(names), tuple(expressions))


@dataclass(frozen=True)
class CompiledUpdate:
    """An UPDATE's SQL and parameters as the ORM compiled them, and its slots:
    (index of a parameter, the name of the call's value it takes, the field
    that prepares that value or None for an id or text)."""

    alias: str
    sql: str
    params: tuple
    slots: tuple

    def bind(self, values) -> list:
        """The parameters with each slot filled from `values` (name → value)."""
        connection = connections[self.alias]
        params = list(self.params)
        for index, name, model_field in self.slots:
            value = values[name]
            if model_field is not None:
                params[index] = model_field.get_db_prep_save(value, connection)
            else:
                stand_in = params[index]
                if isinstance(stand_in, int) and value is not None:
                    value = int(value)
                params[index] = _wrapped_like(stand_in, value)
        return params

    def execute(self, values) -> int:
        """Run the UPDATE with `values`: the number of rows it changed."""
        with connections[self.alias].cursor() as cursor:
            cursor.execute(self.sql, self.bind(values))
            return cursor.rowcount


def compile_update(queryset, values, stand_ins, fields=None) -> CompiledUpdate:
    """Compile once the UPDATE of `queryset`'s rows with `values` (field name →
    value or expression, as `QuerySet.update` takes them). `stand_ins` (name →
    stand-in) are where a call's values go, in the filters or in `values`;
    `fields` (name → model field) names the field that prepares a slot's value
    (its stand-in prepared so too, to be found among the parameters), the
    others are ids or text. Every stand-in must reach the compiled parameters
    (else a call's value would be lost: LostStandIn); EmptyResultSet when the
    filters can match no row, as the ORM's compiler raises it."""
    fields = fields or {}
    alias = queryset.db
    connection = connections[alias]
    query = queryset.query.chain(UpdateQuery)
    query.add_update_values(values)
    sql, params = query.get_compiler(alias).as_sql()
    by_value = {}
    for name, value in stand_ins.items():
        model_field = fields.get(name)
        prepared = value if model_field is None else model_field.get_db_prep_save(value, connection)
        by_value[matched_value(prepared)] = name
    slots = []
    for index, param in enumerate(params):
        try:
            name = by_value.get(matched_value(param))
        except TypeError:  # a parameter no stand-in can be (not hashable)
            continue
        if name is not None:
            slots.append((index, name, fields.get(name)))
    missing = set(stand_ins) - {name for _index, name, _field in slots}
    if missing:
        raise LostStandIn(f"the compiled update lost its stand-ins {sorted(missing)}")
    return CompiledUpdate(alias, sql, tuple(params), tuple(slots))


def matched_value(param):
    """What a parameter is matched with a stand-in by: its value, without the
    wrapper a backend adapted it into (psycopg's Int4 is an int, its Jsonb
    holds the JSON value as `obj`)."""
    if isinstance(param, bool):
        return (bool, param)
    if isinstance(param, int):
        return (int, int(param))
    if isinstance(param, str):
        return (str, str(param))
    inner = getattr(param, "obj", param)
    if isinstance(inner, dict | list):
        return ("json", json.dumps(inner, sort_keys=True))
    return (type(inner), inner)
