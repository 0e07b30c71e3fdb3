"""Temporal activities: every piece of I/O a flow does. Classes hold their dependencies."""
