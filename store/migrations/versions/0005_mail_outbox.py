"""notifications leave the outbox by SMTP: attempts, back-off, delivery and failure recorded

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 06:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('notifications', sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
    op.add_column('notifications', sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('notifications', sa.Column('last_error', sa.Text(), nullable=True))
    op.add_column('notifications', sa.Column('failed_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('notifications', sa.Column('sent_to', sa.String(320), nullable=True))
    op.add_column('notifications', sa.Column('message_id', sa.String(200), nullable=True))
    # The sender's queue: what is still to send, oldest first, without reading what was sent.
    # Queued before e-mail was sent at all, without the facts a French text needs: recorded as
    # not sent rather than mailed out, all at once, in their English one-line form.
    op.execute("update notifications set failed_at = now(), "
               "last_error = 'queued before notices were e-mailed (migration 0005): not sent' where sent_at is null")
    op.create_index('ix_notifications_to_send', 'notifications', ['id'],
                    postgresql_where=sa.text('sent_at IS NULL AND failed_at IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_notifications_to_send', table_name='notifications')
    for column in ('message_id', 'sent_to', 'failed_at', 'last_error', 'next_attempt_at', 'attempts'):
        op.drop_column('notifications', column)
