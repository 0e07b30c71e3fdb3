"""Postgres access: the pool, migrations and SQL query functions per table."""
