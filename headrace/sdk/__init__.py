"""The user model: pipelines, transforms primitives, windows, coders, options, metrics."""
