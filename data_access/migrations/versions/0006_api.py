"""The HTTP API: API keys, idempotent interactions, recommendation requests (impression
attribution), the near-real-time refresh queue and the catalogue stamp.

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    # A plain ADD COLUMN and a unique index: no table rebuild of interactions on SQLite.
    op.add_column('interactions', sa.Column('idempotency_key', sa.String(length=100), nullable=True))
    op.create_index('uq_interactions_idempotency_key', 'interactions', ['idempotency_key'],
                    unique=True)

    op.create_table('api_keys',
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
    sa.UniqueConstraint('name'),
    sa.UniqueConstraint('prefix')
    )

    op.create_table('recommendation_requests',
    sa.Column('request_id', sa.String(length=32), nullable=False),
    sa.Column('user_id', BigId, nullable=True),
    sa.Column('model_version', sa.Integer(), nullable=True),
    sa.Column('strategy', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('event_ids', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('request_id')
    )
    op.create_index('ix_recommendation_requests_user', 'recommendation_requests',
                    ['user_id', 'created_at'], unique=False)
    op.create_index('ix_recommendation_requests_created', 'recommendation_requests',
                    ['created_at'], unique=False)

    op.create_table('refresh_queue',
    sa.Column('user_id', BigId, nullable=False),
    sa.Column('mark_seq', sa.BigInteger(), nullable=False),
    sa.Column('pending_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_by', sa.String(length=200), nullable=True),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_allowed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_lag_seconds', sa.Float(), nullable=True),
    sa.Column('refreshes', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id')
    )
    op.create_index('ix_refresh_queue_due', 'refresh_queue', ['due_at'], unique=False)
    op.create_index('ix_refresh_queue_refreshed', 'refresh_queue', ['refreshed_at'], unique=False)

    stamp = op.create_table('catalog_stamp',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.bulk_insert(stamp, [{'id': 1, 'version': 0}])


def downgrade() -> None:
    op.drop_table('catalog_stamp')
    op.drop_index('ix_refresh_queue_refreshed', table_name='refresh_queue')
    op.drop_index('ix_refresh_queue_due', table_name='refresh_queue')
    op.drop_table('refresh_queue')
    op.drop_index('ix_recommendation_requests_created', table_name='recommendation_requests')
    op.drop_index('ix_recommendation_requests_user', table_name='recommendation_requests')
    op.drop_table('recommendation_requests')
    op.drop_table('api_keys')
    op.drop_index('uq_interactions_idempotency_key', table_name='interactions')
    with op.batch_alter_table('interactions') as batch_op:
        batch_op.drop_column('idempotency_key')
