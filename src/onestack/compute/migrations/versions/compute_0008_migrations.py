"""migrations (resize records)

Revision ID: compute_0008
Revises: compute_0007
Create Date: 2026-11-21 22:20:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = 'compute_0008'
down_revision = 'compute_0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('compute_migrations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=True),
    sa.Column('project_id', sa.String(length=255), nullable=True),
    sa.Column('source_compute', sa.String(length=255), nullable=True),
    sa.Column('dest_compute', sa.String(length=255), nullable=True),
    sa.Column('source_node', sa.String(length=255), nullable=True),
    sa.Column('dest_node', sa.String(length=255), nullable=True),
    sa.Column('dest_host', sa.String(length=255), nullable=True),
    sa.Column('old_instance_type_id', sa.Integer(), nullable=True),
    sa.Column('new_instance_type_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=255), nullable=False),
    sa.Column('migration_type', sa.String(length=32), nullable=False),
    sa.Column('hidden', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_compute_migrations')),
    sa.UniqueConstraint('uuid', name=op.f('uq_compute_migrations_uuid'))
    )
    with op.batch_alter_table('compute_migrations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_compute_migrations_instance_uuid'), ['instance_uuid'], unique=False)
        batch_op.create_index(batch_op.f('ix_compute_migrations_project_id'), ['project_id'], unique=False)


def downgrade() -> None:
    op.drop_table('compute_migrations')
