"""Runners: the direct reference runner, and later the parallel ones."""
