"""Saved training settings: what smart retrains (cron, the API, the console's button) train
with, kept as changes from the built-in defaults so that a later release's better defaults
still reach every setting nobody chose.

- training_settings: one row per scope ("global"), the overrides as JSON, who saved them, when.

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'training_settings',
        sa.Column('scope', sa.String(length=16), nullable=False),
        sa.Column('overrides', sa.JSON(), nullable=False),
        sa.Column('updated_by', sa.String(length=320), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('scope'),
    )


def downgrade() -> None:
    op.drop_table('training_settings')
