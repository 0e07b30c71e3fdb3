"""The HTTP gateway: validates, authenticates, records events and hands them to Temporal."""
