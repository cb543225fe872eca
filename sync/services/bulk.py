"""Many rows written in one statement without building a model instance per row.

The engine's batches insert tens of thousands of journal lines and schedule lines and update
thousands of rows per minute in a burst. Django's ``bulk_create`` builds and prepares a model
instance per row and ``bulk_update`` writes a ``CASE WHEN`` per row and field; in the burst
their Python took a fifth of the workers' time. These take plain values: on PostgreSQL one
``INSERT ... SELECT FROM unnest(...)`` or ``UPDATE ... FROM unnest(...)`` over one array per
column (one fixed statement whatever the row count, so it is prepared once per connection);
elsewhere the ORM's own bulk operations, so behaviour is the same on every database.

Values go through each field's ``get_db_prep_save``, as the ORM would prepare them. Only
plain columns (numbers, strings, dates, times, booleans, foreign key ids): no JSON, no
arrays; a field of another kind is refused, so a caller finds out at once rather than with a
wrong cast. Fields the ORM stamps (``auto_now``, ``auto_now_add``) are refused too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection, models

_PLAIN = (
    models.AutoField,
    models.BigAutoField,
    models.IntegerField,  # and Big/Positive/Small variants
    models.CharField,
    models.TextField,
    models.DateField,  # and DateTimeField
    models.DecimalField,
    models.BooleanField,
    models.UUIDField,
    models.ForeignKey,
)


def _columns(model: type[models.Model], names: Sequence[str]) -> list[models.Field]:
    fields = []
    for name in names:
        field = model._meta.get_field(name)
        if not isinstance(field, _PLAIN) or isinstance(field, models.JSONField):
            raise TypeError(f"{model.__name__}.{name} is not a plain column")
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            # The ORM stamps these itself (and would on the other databases' path).
            raise TypeError(f"{model.__name__}.{name} is stamped by the ORM, not a plain column")
        fields.append(field)
    return fields


def _cast(field: models.Field) -> str:
    target = field.target_field if isinstance(field, models.ForeignKey) else field
    db_type = target.db_type(connection) or "text"
    return {"serial": "integer", "bigserial": "bigint"}.get(db_type, db_type)


def _arrays(fields: list[models.Field], rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    arrays: list[list[Any]] = [[] for _ in fields]
    for row in rows:
        for array, field, value in zip(arrays, fields, row, strict=True):
            array.append(field.get_db_prep_save(value, connection))
    return arrays


def rows_insert(
    model: type[models.Model],
    names: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    returning_ids: bool = False,
) -> list[int]:
    """Insert ``rows`` (one value per name in ``names``, ``_id`` names for foreign keys) into
    ``model``'s table in one statement. Returns the new ids in row order when asked (else
    an empty list). Defaults the database does not know (``auto_now_add``, Python
    defaults) are not applied: name every column the rows need."""
    rows = list(rows)
    if not rows:
        return []
    fields = _columns(model, names)
    if connection.vendor != "postgresql":
        objs = model._default_manager.bulk_create(
            [model(**{f.attname: v for f, v in zip(fields, row, strict=True)}) for row in rows]
        )
        return [obj.pk for obj in objs] if returning_ids else []
    table = connection.ops.quote_name(model._meta.db_table)
    cols = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    unnest = ", ".join(f"%b::{_cast(f)}[]" for f in fields)
    sql = f"INSERT INTO {table} ({cols}) SELECT * FROM unnest({unnest})"  # noqa: S608 (names)
    if returning_ids:
        # In the rows' order, as Django's own bulk_create relies on for PostgreSQL.
        sql += f" RETURNING {connection.ops.quote_name(model._meta.pk.column)}"
    with connection.cursor() as cursor:
        cursor.execute(sql, _arrays(fields, rows))
        return [row[0] for row in cursor.fetchall()] if returning_ids else []


def rows_update(
    model: type[models.Model],
    names: Sequence[str],
    rows: Iterable[tuple[Any, Sequence[Any]]],
) -> int:
    """Set ``names`` to each row's values for many rows in one statement: ``rows`` are
    ``(pk, values)``. Returns the number of rows updated."""
    rows = list(rows)
    if not rows:
        return 0
    fields = _columns(model, names)
    if connection.vendor != "postgresql":
        objs = []
        for pk, values in rows:
            obj = model(pk=pk)
            for field, value in zip(fields, values, strict=True):
                setattr(obj, field.attname, value)
            objs.append(obj)
        return model._default_manager.bulk_update(objs, [f.name for f in fields])
    pk = model._meta.pk
    table = connection.ops.quote_name(model._meta.db_table)
    sets = ", ".join(
        f"{connection.ops.quote_name(f.column)} = v.c{n}" for n, f in enumerate(fields)
    )
    unnest = ", ".join(f"%b::{_cast(f)}[]" for f in [pk, *fields])
    names_v = ", ".join(["id", *(f"c{n}" for n in range(len(fields)))])
    sql = (
        f"UPDATE {table} AS t SET {sets} FROM unnest({unnest}) AS v({names_v}) "  # noqa: S608
        f"WHERE t.{connection.ops.quote_name(pk.column)} = v.id"
    )
    arrays = _arrays([pk, *fields], [(row_pk, *values) for row_pk, values in rows])
    with connection.cursor() as cursor:
        cursor.execute(sql, arrays)
        return cursor.rowcount


def objs_insert(objs: Sequence[models.Model]) -> None:
    """``bulk_create`` for new instances of one model, for the batches' hot paths: every
    concrete field but the primary key written as ``bulk_create`` would write it (each
    field's ``pre_save``, so ``auto_now_add`` stamps; JSON through the field's encoder) in
    one ``INSERT ... SELECT FROM unnest ... RETURNING`` on PostgreSQL, and the new ids set on
    the instances. Elsewhere ``bulk_create`` itself. What it saves is ``bulk_create``'s own
    preparation per instance and field, about half of its cost in the burst."""
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(list(objs))
        return
    for obj in objs:  # a related object saved after it was assigned: take its id, as Django does
        obj._prepare_related_fields_for_save(operation_name="objs_insert")
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    arrays: list[list[Any]] = []
    casts: list[str] = []
    for field in fields:
        values = [field.pre_save(obj, add=True) for obj in objs]
        if isinstance(field, models.JSONField):
            encoder = field.encoder
            arrays.append([None if v is None else json.dumps(v, cls=encoder) for v in values])
            casts.append("%b::text[]::jsonb[]")
        else:
            arrays.append([field.get_db_prep_save(v, connection) for v in values])
            casts.append(f"%b::{_cast(field)}[]")
    table = connection.ops.quote_name(model._meta.db_table)
    cols = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    pk = connection.ops.quote_name(model._meta.pk.column)
    sql = (
        f"INSERT INTO {table} ({cols}) SELECT * FROM unnest({', '.join(casts)}) "  # noqa: S608
        f"RETURNING {pk}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, arrays)
        ids = [row[0] for row in cursor.fetchall()]
    for obj, new_id in zip(objs, ids, strict=True):
        obj.pk = new_id
        obj._state.adding = False
        obj._state.db = connection.alias
