"""invoices become Factur-X e-invoices: the parties' snapshot and the immutable documents

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 09:00:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('invoices', sa.Column('parties', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.create_table(
        'invoice_documents',
        sa.Column('invoice_id', sa.BigInteger(), sa.ForeignKey('invoices.id'), primary_key=True),
        sa.Column('profile', sa.String(64), nullable=False),
        sa.Column('xml', sa.LargeBinary(), nullable=False),
        sa.Column('xml_sha256', sa.String(64), nullable=False),
        sa.Column('pdf', sa.LargeBinary(), nullable=False),
        sa.Column('pdf_sha256', sa.String(64), nullable=False),
        sa.Column('rendered_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    # An issued e-invoice is never altered nor removed: the database refuses it, whoever asks.
    op.execute("""
        create function invoice_documents_are_immutable() returns trigger language plpgsql as $$
        begin
            raise exception 'invoice % : its e-invoice is issued and cannot be changed nor removed (%)',
                old.invoice_id, lower(tg_op)
                using errcode = 'integrity_constraint_violation';
        end $$""")
    op.execute("create trigger invoice_documents_immutable before update or delete on invoice_documents "
               "for each row execute function invoice_documents_are_immutable()")
    op.execute("""
        create function invoice_documents_never_truncated() returns trigger language plpgsql as $$
        begin
            raise exception 'issued e-invoices cannot be truncated' using errcode = 'integrity_constraint_violation';
        end $$""")
    op.execute("create trigger invoice_documents_not_truncated before truncate on invoice_documents "
               "for each statement execute function invoice_documents_never_truncated()")
    # What an invoice was issued with (its parties' snapshot) stays as it was once set.
    op.execute("""
        create function invoice_parties_are_kept() returns trigger language plpgsql as $$
        begin
            if old.parties is not null and new.parties is distinct from old.parties then
                raise exception 'invoice % : the parties it was issued with cannot be changed', old.id
                    using errcode = 'integrity_constraint_violation';
            end if;
            return new;
        end $$""")
    op.execute("create trigger invoice_parties_kept before update of parties on invoices "
               "for each row execute function invoice_parties_are_kept()")


def downgrade() -> None:
    op.execute("drop trigger invoice_parties_kept on invoices")
    op.execute("drop function invoice_parties_are_kept()")
    op.drop_table('invoice_documents')
    op.execute("drop function invoice_documents_are_immutable()")
    op.execute("drop function invoice_documents_never_truncated()")
    op.drop_column('invoices', 'parties')
