"""Fast paths for the hot write paths. Django's bulk_update builds one CASE expression per field
and bulk_create instantiates a model per row; these send plain tuples: COPY or a pipelined
executemany on PostgreSQL, and the ORM's own adaptation elsewhere (SQLite is not the load path)."""

from __future__ import annotations

from django.db import connection, models


def _fields(model: type[models.Model], field_names: list[str]) -> list[models.Field]:
    return [model._meta.get_field(name) for name in field_names]


def _adapt(fields: list[models.Field], rows: list[tuple]) -> list[list]:
    if connection.vendor == "postgresql":
        from psycopg.types.json import Jsonb

        from consent.fields import EncryptedTextField

        json_positions = [i for i, field in enumerate(fields) if isinstance(field, models.JSONField)]
        # Encrypted fields encrypt in get_prep_value: a raw value here would be stored in the clear.
        encrypted_positions = [i for i, field in enumerate(fields) if isinstance(field, EncryptedTextField)]
        if not json_positions and not encrypted_positions:
            return [list(row) for row in rows]
        adapted = []
        for row in rows:
            row = list(row)
            for i in json_positions:
                row[i] = Jsonb(row[i])
            for i in encrypted_positions:
                row[i] = fields[i].get_db_prep_save(row[i], connection)
            adapted.append(row)
        return adapted
    return [
        [field.get_db_prep_save(value, connection) for field, value in zip(fields, row, strict=True)] for row in rows
    ]


def _arrays(fields: list[models.Field], rows: list[list]) -> tuple[str, list[list]]:
    """`unnest(%s::type[], ...)` over one array parameter per column: a statement of any size is
    one short query string, so nothing is built or parsed per row (PostgreSQL)."""
    casts = ", ".join(f"%b::{field.cast_db_type(connection)}[]" for field in fields)
    columns = [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in fields]
    return f"unnest({casts})", columns


def update_rows(model: type[models.Model], field_names: list[str], rows: list[tuple]) -> None:
    """UPDATE by primary key; each row is (pk, *values in field_names order)."""
    if not rows:
        return
    quote = connection.ops.quote_name
    fields = _fields(model, field_names)
    pk = model._meta.pk
    table = quote(model._meta.db_table)
    if connection.vendor == "postgresql" and len(rows) > 1:
        source, columns = _arrays([pk, *fields], _adapt([pk, *fields], rows))
        names = ", ".join(["pk", *(f"v{i}" for i in range(len(fields)))])
        assignments = ", ".join(f"{quote(field.column)} = v.v{i}" for i, field in enumerate(fields))
        sql = f"UPDATE {table} AS t SET {assignments} FROM {source} AS v({names}) WHERE t.{quote(pk.column)} = v.pk"  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(sql, columns)
        return
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    sql = f"UPDATE {table} SET {assignments} WHERE {quote(pk.column)} = %s"  # noqa: S608
    adapted = _adapt([*fields, pk], [(*row[1:], row[0]) for row in rows])
    with connection.cursor() as cursor:
        cursor.executemany(sql, adapted)


def select_in(model: type[models.Model], field_names: list[str], field_name: str, values) -> list[tuple]:
    """Tuples of `field_names` (attnames, e.g. `profile_id`) of the rows whose `field_name` is one
    of `values`. PostgreSQL gets one array parameter (no placeholder per value to build and
    parse); elsewhere the ORM, in IN lists of at most 900 (SQLite's parameter cap)."""
    values = list(values)
    if not values:
        return []
    if connection.vendor != "postgresql":
        found = []
        for start in range(0, len(values), 900):
            rows = model.objects.filter(**{f"{field_name}__in": values[start : start + 900]})
            found.extend(rows.values_list(*field_names))
        return found
    quote = connection.ops.quote_name
    field = model._meta.get_field(field_name)
    selected = ", ".join(quote(model._meta.get_field(name).column) for name in field_names)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {selected} FROM {quote(model._meta.db_table)} "  # noqa: S608
            f"WHERE {quote(field.column)} = ANY(%b::{field.cast_db_type(connection)}[])",
            [values],
        )
        return cursor.fetchall()


def insert_rows(
    model: type[models.Model],
    field_names: list[str],
    rows: list[tuple],
    *,
    ignore_conflicts=False,
    returning: list[str] | None = None,
) -> list[tuple]:
    """Insert tuples (values in field_names order).

    With ignore_conflicts, rows that hit a unique constraint are skipped (INSERT ... ON CONFLICT
    DO NOTHING); otherwise PostgreSQL gets a COPY. With `returning` (column names), the inserted
    rows' values are returned (PostgreSQL, or SQLite 3.35+), conflicting rows left out.
    """
    if not rows:
        return []
    fields = _fields(model, field_names)
    quote = connection.ops.quote_name
    table, columns = quote(model._meta.db_table), ", ".join(quote(field.column) for field in fields)
    adapted = _adapt(fields, rows)
    conflict = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    back = f" RETURNING {', '.join(quote(column) for column in returning)}" if returning else ""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and (ignore_conflicts or returning):
            source, arrays = _arrays(fields, adapted)
            cursor.execute(f"INSERT INTO {table} ({columns}) SELECT * FROM {source}{conflict}{back}", arrays)  # noqa: S608
            return cursor.fetchall() if returning else []
        if returning:
            placeholders = ", ".join(["%s"] * len(fields))
            inserted = []
            for row in adapted:
                cursor.execute(f"INSERT INTO {table} ({columns}) VALUES ({placeholders}){conflict}{back}", row)  # noqa: S608
                inserted.extend(cursor.fetchall())
            return inserted
        if ignore_conflicts or connection.vendor != "postgresql":
            placeholders = ", ".join(["%s"] * len(fields))
            conflict = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders}){conflict}", adapted)  # noqa: S608
            return []
        # The raw psycopg cursor: wrap its errors so callers see Django's (IntegrityError, ...).
        with connection.wrap_database_errors, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in adapted:
                copy.write_row(row)
    return []
