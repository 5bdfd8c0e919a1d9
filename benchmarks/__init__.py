"""relayna benchmarks: `python -m benchmarks NAME` (or `list`). Never timed tests."""
