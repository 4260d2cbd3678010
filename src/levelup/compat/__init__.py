"""Compatibility layers that let existing scripts run on levelup unchanged."""
