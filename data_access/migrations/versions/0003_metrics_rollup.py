"""Daily metrics rollup: the Metrics page reads per-day sums instead of scanning interactions.

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    state = op.create_table('metrics_rollup_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('interactions_max_id', sa.BigInteger(), nullable=True),
    sa.Column('users_count', sa.BigInteger(), nullable=True),
    sa.Column('users_max_id', sa.BigInteger(), nullable=True),
    sa.Column('events_count', sa.BigInteger(), nullable=True),
    sa.Column('events_max_id', sa.BigInteger(), nullable=True),
    sa.Column('events_max_updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('click_window_seconds', sa.Integer(), nullable=True),
    sa.Column('registration_window_seconds', sa.Integer(), nullable=True),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    # The one row, never built: the first read builds the rollup from every interaction.
    op.bulk_insert(state, [{'id': 1}])

    op.create_table('metrics_daily_counts',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('category', sa.String(length=80), nullable=True),
    sa.Column('impressions', sa.BigInteger(), nullable=False),
    sa.Column('clicks', sa.BigInteger(), nullable=False),
    sa.Column('registrations', sa.BigInteger(), nullable=False),
    sa.Column('unregistrations', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('metrics_daily_counts', schema=None) as batch_op:
        batch_op.create_index('ix_metrics_daily_counts_day', ['day'], unique=False)

    op.create_table('metrics_daily_attributed',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('attributed', sa.Integer(), nullable=False),
    sa.Column('model_version', sa.Integer(), nullable=True),
    sa.Column('strategy', sa.String(length=32), nullable=True),
    sa.Column('position', sa.Integer(), nullable=True),
    sa.Column('impressions', sa.BigInteger(), nullable=False),
    sa.Column('clicks', sa.BigInteger(), nullable=False),
    sa.Column('registrations', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('metrics_daily_attributed', schema=None) as batch_op:
        batch_op.create_index('ix_metrics_daily_attributed_day', ['day'], unique=False)


def downgrade() -> None:
    op.drop_table('metrics_daily_attributed')
    op.drop_table('metrics_daily_counts')
    op.drop_table('metrics_rollup_state')
