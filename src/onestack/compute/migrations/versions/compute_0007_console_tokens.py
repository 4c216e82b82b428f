"""console auth tokens

Revision ID: compute_0007
Revises: compute_0006
Create Date: 2026-11-21 21:40:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = 'compute_0007'
down_revision = 'compute_0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('compute_console_auth_tokens',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('console_type', sa.String(length=32), nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('internal_access_path', sa.String(length=255), nullable=True),
    sa.Column('socket', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_compute_console_auth_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_compute_console_auth_tokens_token_hash'))
    )
    with op.batch_alter_table('compute_console_auth_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_compute_console_auth_tokens_expires'), ['expires'], unique=False)
        batch_op.create_index(batch_op.f('ix_compute_console_auth_tokens_instance_uuid'), ['instance_uuid'], unique=False)


def downgrade() -> None:
    op.drop_table('compute_console_auth_tokens')
