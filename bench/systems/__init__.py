"""The systems under test, each run against its own copy of the same commands topic."""
