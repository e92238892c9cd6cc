"""Beacon: an event-recommendation engine and the services its console and command line call."""
__version__ = "0.1.0"
