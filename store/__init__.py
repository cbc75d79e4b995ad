"""The system of record: SQLAlchemy 2 tables on PostgreSQL, data-access functions, migrations."""
