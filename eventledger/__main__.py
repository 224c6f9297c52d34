"""``python -m eventledger``: the console script, for environments without it on PATH."""

from eventledger.console import main

main()
