"""server groups and quotas

Revision ID: compute_0005
Revises: compute_0004
Create Date: 2026-11-21 18:10:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = 'compute_0005'
down_revision = 'compute_0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('compute_server_groups',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('policy', sa.String(length=32), nullable=False),
    sa.Column('rules', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_compute_server_groups')),
    sa.UniqueConstraint('uuid', name=op.f('uq_compute_server_groups_uuid'))
    )
    with op.batch_alter_table('compute_server_groups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_compute_server_groups_project_id'), ['project_id'], unique=False)

    op.create_table('compute_server_group_members',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['compute_server_groups.id'], name=op.f('fk_compute_server_group_members_group_id_compute_server_groups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_compute_server_group_members')),
    sa.UniqueConstraint('instance_uuid', name=op.f('uq_compute_server_group_members_instance_uuid'))
    )
    with op.batch_alter_table('compute_server_group_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_compute_server_group_members_group_id'), ['group_id'], unique=False)

    op.create_table('compute_quotas',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('resource', sa.String(length=255), nullable=False),
    sa.Column('hard_limit', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_compute_quotas')),
    sa.UniqueConstraint('project_id', 'user_id', 'resource', name=op.f('uq_compute_quotas_project_id_user_id_resource'))
    )
    with op.batch_alter_table('compute_quotas', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_compute_quotas_project_id'), ['project_id'], unique=False)

    op.create_table('compute_quota_classes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('class_name', sa.String(length=255), nullable=False),
    sa.Column('resource', sa.String(length=255), nullable=False),
    sa.Column('hard_limit', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_compute_quota_classes')),
    sa.UniqueConstraint('class_name', 'resource', name=op.f('uq_compute_quota_classes_class_name_resource'))
    )
    with op.batch_alter_table('compute_quota_classes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_compute_quota_classes_class_name'), ['class_name'], unique=False)


def downgrade() -> None:
    for table in ("compute_quota_classes", "compute_quotas", "compute_server_group_members",
                  "compute_server_groups"):
        op.drop_table(table)
