"""Outbound channels: email over SMTP (SMS and webhooks join here)."""
