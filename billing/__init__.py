"""Pure billing domain: money, catalogue, periods, proration, quota, invoices.

Nothing here imports Temporal, SQLAlchemy, psycopg, Stripe or the network, and nothing reads
the clock: every date is passed in, so the same functions serve the workflow, the API and the
tests (which run in milliseconds).
"""
