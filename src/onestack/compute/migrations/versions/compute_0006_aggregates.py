"""host aggregates

Revision ID: compute_0006
Revises: compute_0005
Create Date: 2026-11-21 18:45:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = 'compute_0006'
down_revision = 'compute_0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('compute_aggregates',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_compute_aggregates')),
    sa.UniqueConstraint('name', name=op.f('uq_compute_aggregates_name')),
    sa.UniqueConstraint('uuid', name=op.f('uq_compute_aggregates_uuid'))
    )
    op.create_table('compute_aggregate_hosts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('aggregate_id', sa.Integer(), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['aggregate_id'], ['compute_aggregates.id'], name=op.f('fk_compute_aggregate_hosts_aggregate_id_compute_aggregates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_compute_aggregate_hosts')),
    sa.UniqueConstraint('aggregate_id', 'host', name=op.f('uq_compute_aggregate_hosts_aggregate_id_host'))
    )
    with op.batch_alter_table('compute_aggregate_hosts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_compute_aggregate_hosts_aggregate_id'), ['aggregate_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_compute_aggregate_hosts_host'), ['host'], unique=False)

    op.create_table('compute_aggregate_metadata',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('aggregate_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['aggregate_id'], ['compute_aggregates.id'], name=op.f('fk_compute_aggregate_metadata_aggregate_id_compute_aggregates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_compute_aggregate_metadata')),
    sa.UniqueConstraint('aggregate_id', 'key', name=op.f('uq_compute_aggregate_metadata_aggregate_id_key'))
    )
    with op.batch_alter_table('compute_aggregate_metadata', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_compute_aggregate_metadata_aggregate_id'), ['aggregate_id'], unique=False)


def downgrade() -> None:
    for table in ("compute_aggregate_metadata", "compute_aggregate_hosts",
                  "compute_aggregates"):
        op.drop_table(table)
