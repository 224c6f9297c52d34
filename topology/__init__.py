"""The generic event-sourcing flow over any aggregate, free of I/O.

`protocol` (what an aggregate provides), `settings`, `topics` (names and configs),
`partitioner` (Kafka's key → partition), `codec` (the only bytes boundary), `step` (the pure
batch step) and `restore` (recovery plan and folds).
"""

__all__: list[str] = []
