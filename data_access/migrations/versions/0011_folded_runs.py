"""A skip folded into a newer identical one keeps its row (marked with the run that counts it),
so a run id a caller was given keeps answering after later skips fold it.

- training_runs: `folded_into` (the surviving run's id; NULL for every run a list shows), and
  an index on it.

Revision ID: 0011
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('training_runs', sa.Column('folded_into', sa.BigInteger().with_variant(
        sa.Integer(), 'sqlite'), nullable=True))
    op.create_index('ix_training_runs_folded_into', 'training_runs', ['folded_into'])


def downgrade() -> None:
    # the rows kept for their ids go, as before this revision
    op.execute("DELETE FROM training_runs WHERE folded_into IS NOT NULL")
    op.drop_index('ix_training_runs_folded_into', table_name='training_runs')
    with op.batch_alter_table('training_runs') as batch_op:
        batch_op.drop_column('folded_into')
