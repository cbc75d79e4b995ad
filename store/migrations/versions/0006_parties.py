"""firms and clients gain the legal identity e-invoices name: legal name, SIREN, VAT number, address, billing e-mail

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 08:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

PARTIES = ('firms', 'clients')


def identity_columns() -> list[sa.Column]:
    return [
        sa.Column('legal_name', sa.String(200), nullable=True),
        sa.Column('siren', sa.String(9), nullable=True),
        sa.Column('vat_number', sa.String(13), nullable=True),
        sa.Column('address_line1', sa.String(200), nullable=True),
        sa.Column('address_line2', sa.String(200), nullable=True),
        sa.Column('postal_code', sa.String(16), nullable=True),
        sa.Column('city', sa.String(100), nullable=True),
        # Every party so far is French: the default fills the rows already there.
        sa.Column('country', sa.String(2), server_default='FR', nullable=False),
        sa.Column('billing_email', sa.String(320), nullable=True),
    ]


def upgrade() -> None:
    for table in PARTIES:
        for column in identity_columns():
            op.add_column(table, column)


def downgrade() -> None:
    for table in PARTIES:
        for column in reversed(identity_columns()):
            op.drop_column(table, column.name)
