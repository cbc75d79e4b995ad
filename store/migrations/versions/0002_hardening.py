"""hardening: line reservations (R2), combined charges and waiting invoices (R16), attempt
states for cancelled and refused intents, operator alerts (R11), chronological dates (R4)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 04:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

OLD_ATTEMPT_STATES = "status in ('pending', 'succeeded', 'declined', 'requires_action')"
NEW_ATTEMPT_STATES = "status in ('pending', 'succeeded', 'declined', 'requires_action', 'canceled', 'error')"


def upgrade() -> None:
    op.create_table('line_reservations',
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('line', sa.String(length=16), nullable=False),
    sa.Column('subscription_id', sa.String(length=200), nullable=False),
    sa.Column('reserved_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], ),
    sa.PrimaryKeyConstraint('client_id', 'line')
    )
    op.create_index(op.f('ix_line_reservations_subscription_id'), 'line_reservations', ['subscription_id'], unique=False)
    # Live subscriptions of an existing database hold their lines from now on.
    op.execute("""
        insert into line_reservations (client_id, line, subscription_id)
        select client_id, 'einvoicing', id from subscriptions where status <> 'ended' and product in ('einvoicing', 'bundle')
        union all
        select client_id, 'payments', id from subscriptions where status <> 'ended' and product in ('payments', 'bundle')
        on conflict do nothing
    """)
    op.create_table('payment_attempt_invoices',
    sa.Column('attempt_id', sa.BigInteger(), nullable=False),
    sa.Column('invoice_id', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['attempt_id'], ['payment_attempts.id'], ),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], ),
    sa.PrimaryKeyConstraint('attempt_id', 'invoice_id')
    )
    op.create_index(op.f('ix_payment_attempt_invoices_invoice_id'), 'payment_attempt_invoices', ['invoice_id'], unique=False)
    op.execute("""
        insert into payment_attempt_invoices (attempt_id, invoice_id, amount)
        select id, invoice_id, amount from payment_attempts
    """)
    op.create_table('operator_alerts',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('dedupe_key', sa.String(length=300), nullable=False),
    sa.Column('subscription_id', sa.String(length=200), nullable=True),
    sa.Column('invoice_id', sa.BigInteger(), nullable=True),
    sa.Column('step', sa.String(length=64), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedupe_key')
    )
    op.create_index(op.f('ix_operator_alerts_subscription_id'), 'operator_alerts', ['subscription_id'], unique=False)
    op.add_column('invoices', sa.Column('waiting_since', sa.Date(), nullable=True))
    op.add_column('invoices', sa.Column('collecting_attempt_id', sa.BigInteger(), nullable=True))
    op.create_index('waiting_by_payer', 'invoices', ['payer_kind', 'payer_id'], unique=False,
                    postgresql_where=sa.text("waiting_since is not null and status = 'open'"))
    op.add_column('subscription_periods', sa.Column('used', sa.BigInteger(), server_default='0', nullable=False))
    op.execute("""
        update subscription_periods p set used = coalesce((
            select sum(documents) from usage_events e
            where e.subscription_id = p.subscription_id and e.period_start = p.period_start), 0)
    """)
    op.add_column('invoice_counters', sa.Column('last_issued_on', sa.Date(), nullable=True))
    op.execute("""
        update invoice_counters c set last_issued_on = (
            select max(issued_on) from invoices i where i.series = c.series and i.number is not null)
    """)
    op.alter_column('notifications', 'subject', type_=sa.Text(), existing_type=sa.String(length=300))
    op.drop_constraint('attempt_status_known', 'payment_attempts', type_='check')
    op.create_check_constraint('attempt_status_known', 'payment_attempts', NEW_ATTEMPT_STATES)


def downgrade() -> None:
    op.execute("update payment_attempts set status = 'declined' where status in ('canceled', 'error')")
    op.drop_constraint('attempt_status_known', 'payment_attempts', type_='check')
    op.create_check_constraint('attempt_status_known', 'payment_attempts', OLD_ATTEMPT_STATES)
    op.alter_column('notifications', 'subject', type_=sa.String(length=300), existing_type=sa.Text(),
                    postgresql_using='left(subject, 300)')
    op.drop_column('invoice_counters', 'last_issued_on')
    op.drop_column('subscription_periods', 'used')
    op.drop_index('waiting_by_payer', table_name='invoices',
                  postgresql_where=sa.text("waiting_since is not null and status = 'open'"))
    op.drop_column('invoices', 'collecting_attempt_id')
    op.drop_column('invoices', 'waiting_since')
    op.drop_index(op.f('ix_operator_alerts_subscription_id'), table_name='operator_alerts')
    op.drop_table('operator_alerts')
    op.drop_index(op.f('ix_payment_attempt_invoices_invoice_id'), table_name='payment_attempt_invoices')
    op.drop_table('payment_attempt_invoices')
    op.drop_index(op.f('ix_line_reservations_subscription_id'), table_name='line_reservations')
    op.drop_table('line_reservations')
