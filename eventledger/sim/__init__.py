"""The deterministic simulator: the ledger's pure core (the batch step, decide / evolve, the
id memory's judge, the restore folds) over in-memory logs with Kafka's transactional
semantics, driven from a seed, checked after every step (see `eventledger.sim.checker`)."""
