"""A model version records the data's state when an operator activates it, so that a rollback
holds smart retraining off only while the data stays as it was (new data trains again).

- beacon_models: `activated_data`, the data fingerprint without the settings (NULL for
  activations before this revision and for a trained version's own activation).

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('beacon_models', sa.Column('activated_data', sa.String(length=64),
                                             nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('beacon_models') as batch_op:
        batch_op.drop_column('activated_data')
