"""API key names are unique among active keys only, so a revoked key's name can be given to
its replacement. The revoked row keeps its name for the audit trail; revoke and lookups by name
act on the active key.

- api_keys: the UNIQUE (name) constraint becomes a unique index on name WHERE revoked_at IS
  NULL (a partial index, on SQLite and Postgres alike).

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
ACTIVE = sa.text("revoked_at IS NULL")


def _api_keys_without_name_constraint() -> sa.Table:
    """The table as 0006 created it, less UNIQUE (name): SQLite's copy of it is built from this
    (the constraint has no name there, so it cannot be dropped by name)."""
    return sa.Table(
        'api_keys', sa.MetaData(),
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('prefix', sa.String(length=16), nullable=False),
        sa.Column('key_hash', sa.String(length=64), nullable=False),
        sa.Column('scopes', sa.String(length=64), nullable=False),
        sa.Column('created_by', sa.String(length=200), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('prefix'),
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table('api_keys', copy_from=_api_keys_without_name_constraint(),
                                  recreate="always"):
            pass
    else:
        op.drop_constraint('api_keys_name_key', 'api_keys', type_='unique')
    op.create_index('uq_api_keys_active_name', 'api_keys', ['name'], unique=True,
                    sqlite_where=ACTIVE, postgresql_where=ACTIVE)


def downgrade() -> None:
    # UNIQUE (name) again: a revoked key whose name was given to another key is renamed
    # "<name>#<id>" first, or the constraint could not be created
    op.execute(sa.text(
        "UPDATE api_keys SET name = substr(name, 1, 80) || '#' || CAST(id AS VARCHAR(20)) "
        "WHERE revoked_at IS NOT NULL AND name IN "
        "(SELECT name FROM api_keys GROUP BY name HAVING count(*) > 1)"))
    op.drop_index('uq_api_keys_active_name', table_name='api_keys')
    with op.batch_alter_table('api_keys') as batch_op:
        batch_op.create_unique_constraint('api_keys_name_key', ['name'])
