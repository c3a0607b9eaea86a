"""Shared runtime helpers copied into every processor image."""
