"""instance state for resize, rebuild, shelve and rescue

Revision ID: compute_0004
Revises: compute_0003
Create Date: 2026-11-21 10:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = 'compute_0004'
down_revision = 'compute_0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('compute_instances') as batch:
        batch.add_column(sa.Column('system_metadata', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('old_flavor', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('new_flavor', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('compute_instances') as batch:
        batch.drop_column('new_flavor')
        batch.drop_column('old_flavor')
        batch.drop_column('system_metadata')
