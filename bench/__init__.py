"""The benchmark harness of issue 4: eventledger beside Quix Streams and a raw pipe.

Run it with ``python -m bench`` (or ``make bench``); ``--help`` lists the options. Nothing in
this package is imported by the service itself.
"""
