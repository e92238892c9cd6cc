"""Model versions keep what their components chose on validation (co-attendance, content,
trend), so the console can show and compare it without loading a version's weights.

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN with a default: versions stored before it read as "not recorded".
    op.add_column('beacon_models', sa.Column('components', sa.JSON(), nullable=False,
                                             server_default=sa.text("'{}'")))


def downgrade() -> None:
    op.drop_column('beacon_models', 'components')
