"""Notifications domain: alert rules and their edge-triggered evaluation. No I/O."""
