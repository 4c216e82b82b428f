"""services

Revision ID: compute_0003
Revises: compute_0002
Create Date: 2026-11-21 15:20:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = 'compute_0003'
down_revision = 'compute_0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('compute_services',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('binary', sa.String(length=255), nullable=False),
    sa.Column('topic', sa.String(length=255), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('disabled_reason', sa.String(length=255), nullable=True),
    sa.Column('forced_down', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_compute_services')),
    sa.UniqueConstraint('host', 'binary', name=op.f('uq_compute_services_host_binary')),
    sa.UniqueConstraint('uuid', name=op.f('uq_compute_services_uuid'))
    )


def downgrade() -> None:
    op.drop_table('compute_services')
