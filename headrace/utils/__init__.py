"""Beam's ``utils`` module paths for timestamps and windowed values."""
