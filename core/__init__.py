"""Shared plumbing for lanepaint. Importing core never imports torch or other model libraries."""

__version__ = "0.1.0"
