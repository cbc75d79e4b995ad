"""Notices leave the outbox as e-mails: French texts, SMTP, the dispatcher."""
