"""Operators, sign-in attempts, console secrets, the audit log, and cancelling a training run.

Revision ID: 0005
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0003'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
OLD_RUN_STATUSES = "('queued', 'running', 'succeeded', 'skipped', 'failed', 'abandoned')"
NEW_RUN_STATUSES = "('queued', 'running', 'succeeded', 'skipped', 'failed', 'abandoned', 'cancelled')"


def upgrade() -> None:
    op.create_table('operators',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=True),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_sign_in_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("role IN ('viewer', 'operator', 'admin')", name='ck_operators_role'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email')
    )

    op.create_table('sign_in_attempts',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('client', sa.String(length=120), nullable=True),
    sa.Column('succeeded', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_sign_in_attempts_email_at', 'sign_in_attempts', ['email', 'at'])
    op.create_index('ix_sign_in_attempts_client_at', 'sign_in_attempts', ['client', 'at'])

    op.create_table('console_secrets',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )

    op.create_table('audit_log',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('who', sa.String(length=320), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.CheckConstraint("outcome IN ('ok', 'refused', 'failed')", name='ck_audit_log_outcome'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_audit_log_at', 'audit_log', ['at'])
    op.create_index('ix_audit_log_who_at', 'audit_log', ['who', 'at'])
    op.create_index('ix_audit_log_action_at', 'audit_log', ['action', 'at'])

    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cancel_requested_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('cancel_requested_by', sa.String(length=200), nullable=True))
        batch_op.drop_constraint('ck_training_runs_status', type_='check')
        batch_op.create_check_constraint('ck_training_runs_status', f"status IN {NEW_RUN_STATUSES}")


def downgrade() -> None:
    op.execute("UPDATE training_runs SET status = 'failed' WHERE status = 'cancelled'")
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.drop_constraint('ck_training_runs_status', type_='check')
        batch_op.create_check_constraint('ck_training_runs_status', f"status IN {OLD_RUN_STATUSES}")
        batch_op.drop_column('cancel_requested_by')
        batch_op.drop_column('cancel_requested_at')
    op.drop_table('audit_log')
    op.drop_table('console_secrets')
    op.drop_table('sign_in_attempts')
    op.drop_table('operators')
