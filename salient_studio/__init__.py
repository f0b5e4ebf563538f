"""Salient Studio from a script or notebook: ``from salient_studio.client import Studio`` (no Django needed)."""
