"""temporal-journeys: marketing-automation flows on Temporal."""

__version__ = "0.1.0"
