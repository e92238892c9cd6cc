"""Alembic environment: run by data_access.migrate with a live connection in config.attributes."""
from alembic import context

from data_access.schema import Base, UTCDateTime

config = context.config
connection = config.attributes["connection"]


def render_item(type_, obj, _autogen_context):
    # Revisions must not import the live schema module: spell our decorator as its SQL type.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
