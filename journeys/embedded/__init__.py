"""Embedded services for development and tests: Postgres, the Temporal dev server, a mail catcher."""
