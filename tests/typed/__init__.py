"""Files mypy checks with the ``jobkit.mypy`` plugin: see tests/unit/test_typed_usage.py."""
