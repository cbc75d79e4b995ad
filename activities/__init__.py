"""Side effects of the subscription workflow: the system of record, payments, notices.

Every activity is idempotent: its request carries a key derived from what it does, so a
retry finds the work already done instead of doing it twice.
"""
