"""Placeholder package; the stage lands in its own issue."""
