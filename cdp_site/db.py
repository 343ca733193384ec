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

        json_positions = [i for i, field in enumerate(fields) if isinstance(field, models.JSONField)]
        if not json_positions:
            return [list(row) for row in rows]
        adapted = []
        for row in rows:
            row = list(row)
            for i in json_positions:
                row[i] = Jsonb(row[i])
            adapted.append(row)
        return adapted
    return [
        [field.get_db_prep_save(value, connection) for field, value in zip(fields, row, strict=True)] for row in rows
    ]


def update_rows(model: type[models.Model], field_names: list[str], rows: list[tuple]) -> None:
    """UPDATE by primary key; each row is (pk, *values in field_names order)."""
    if not rows:
        return
    quote = connection.ops.quote_name
    fields = _fields(model, field_names)
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    sql = f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {quote(model._meta.pk.column)} = %s"  # noqa: S608
    adapted = _adapt([*fields, model._meta.pk], [(*row[1:], row[0]) for row in rows])
    with connection.cursor() as cursor:
        cursor.executemany(sql, adapted)


def insert_rows(
    model: type[models.Model], field_names: list[str], rows: list[tuple], *, ignore_conflicts=False
) -> None:
    """Insert tuples (values in field_names order) whose generated ids the caller does not need.

    With ignore_conflicts, rows that hit a unique constraint are skipped (INSERT ... ON CONFLICT
    DO NOTHING); otherwise PostgreSQL gets a COPY.
    """
    if not rows:
        return
    fields = _fields(model, field_names)
    quote = connection.ops.quote_name
    table, columns = quote(model._meta.db_table), ", ".join(quote(field.column) for field in fields)
    adapted = _adapt(fields, rows)
    with connection.cursor() as cursor:
        if ignore_conflicts or connection.vendor != "postgresql":
            placeholders = ", ".join(["%s"] * len(fields))
            conflict = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders}){conflict}", adapted)  # noqa: S608
            return
        # The raw psycopg cursor: wrap its errors so callers see Django's (IntegrityError, ...).
        with connection.wrap_database_errors, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in adapted:
                copy.write_row(row)
