"""the current period's usage on the subscription row, for the firm overview (R14)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 04:40:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('subscriptions', sa.Column('used', sa.BigInteger(), server_default='0', nullable=False))
    op.execute("""
        update subscriptions s set used = p.used from subscription_periods p
        where p.subscription_id = s.id and p.period_start = s.period_start
    """)


def downgrade() -> None:
    op.drop_column('subscriptions', 'used')
