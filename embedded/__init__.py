"""The real parts, started locally: PostgreSQL, the Temporal dev/test servers, localstripe."""
