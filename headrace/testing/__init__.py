"""Testing utilities with Beam's module paths: ``testing.util`` and ``testing.test_pipeline``."""
