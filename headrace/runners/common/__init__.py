"""Execution helpers shared by every runner: DoFn invocation and user-error reporting."""
