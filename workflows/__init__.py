"""Deterministic orchestration: one workflow per subscription line, for its whole life."""
