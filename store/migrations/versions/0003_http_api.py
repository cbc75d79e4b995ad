"""HTTP API: clients' external ids per firm, idempotency records, the overview's index

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 04:00:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('clients', sa.Column('external_id', sa.String(length=64), nullable=True))
    op.create_unique_constraint('external_id_once_per_firm', 'clients', ['firm_id', 'external_id'])
    op.create_table('idempotency_records',
    sa.Column('caller', sa.String(length=80), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('response', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('caller', 'key')
    )
    op.create_index('live_by_payer', 'subscriptions', ['payer_kind', 'payer_id', 'client_id'], unique=False,
                    postgresql_where=sa.text("status <> 'ended'"))


def downgrade() -> None:
    op.drop_index('live_by_payer', table_name='subscriptions', postgresql_where=sa.text("status <> 'ended'"))
    op.drop_table('idempotency_records')
    op.drop_constraint('external_id_once_per_firm', 'clients', type_='unique')
    op.drop_column('clients', 'external_id')
