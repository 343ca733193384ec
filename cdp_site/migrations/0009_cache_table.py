"""The table of Django's database cache, `cdp_cache`: production settings use it when REDIS_URL is not
set, so log-in lockout counts and tracking rate limits are shared by every process and machine.

Created here, so no deployment needs a `manage.py createcachetable` step, with exactly the columns
and index `createcachetable` makes (django/core/management/commands/createcachetable.py): the same
field definitions rendered by the same backend. Every environment gets it (development and tests use
another cache and leave it empty). Skipped when the table exists already, for instance made by an
earlier `createcachetable`.
"""

from django.db import migrations, models

TABLE = "cdp_cache"


def cache_table_statements(connection, table: str = TABLE) -> list[str]:
    """CREATE TABLE and CREATE INDEX as createcachetable writes them for `table` on this connection."""
    quote = connection.ops.quote_name
    fields = (
        # "key" is a reserved word in MySQL, hence "cache_key" (Django's choice, kept).
        models.CharField(name="cache_key", max_length=255, unique=True, primary_key=True),
        models.TextField(name="value"),
        models.DateTimeField(name="expires", db_index=True),
    )
    columns, indexes = [], []
    for field in fields:
        column = [quote(field.name), field.db_type(connection=connection), "NULL" if field.null else "NOT NULL"]
        if field.primary_key:
            column.append("PRIMARY KEY")
        elif field.unique:
            column.append("UNIQUE")
        if field.db_index:
            unique = "UNIQUE " if field.unique else ""
            name = quote(f"{table}_{field.name}")
            indexes.append(f"CREATE {unique}INDEX {name} ON {quote(table)} ({quote(field.name)});")
        columns.append(" ".join(column))
    create = "\n".join([f"CREATE TABLE {quote(table)} (", ",\n".join(f"    {c}" for c in columns), ");"])
    return [create, *indexes]


def create_cache_table(apps, schema_editor):
    connection = schema_editor.connection
    if TABLE in connection.introspection.table_names():
        return
    for statement in cache_table_statements(connection):
        schema_editor.execute(statement)


def drop_cache_table(apps, schema_editor):
    # Its rows are only cache entries: dropping loses nothing that is not rebuilt on use.
    schema_editor.execute(f"DROP TABLE IF EXISTS {schema_editor.connection.ops.quote_name(TABLE)}")


class Migration(migrations.Migration):
    dependencies = [("cdp_site", "0008_api_token_scopes")]

    operations = [migrations.RunPython(create_cache_table, drop_cache_table)]
