"""The pure batch step: command records in, the records of one Kafka transaction out.

`batch.process_batch` is the driver; it reads as the steps of a batch, and each job has a
module of its own:

- `records`: what the step reads and writes (`InRecord`, `OutRecord`, `Outcome`,
  `BatchResult`);
- `context`: where and when a batch runs (`StepContext`), and which aggregates the
  partition owns (its slot record) and where others' records go;
- `reading`: the records decoded, a record of the flow itself (a forwarded command, a
  move's request or part) told apart;
- `admission`: what becomes of a decoded command before it is decided (dead-lettered,
  refused, answered from memory, skipped or executed), the id memory's judge applied;
- `deciding`: the aggregate's decision and its events folded into the working slots;
- `saga`: the internal commands a decision sends, routed to their partitions;
- `answers`: how each command is answered (a final reply, or an in-flight marker while its
  saga runs);
- `dead_letters`: a dead letter's record and headers, cut to the limits;
- `state`: the working state (slots, money moves, lost legs); `output`: the records so far
  and their assembly into a `BatchResult`;
- `moving`: a repartition's handoff and install;
- `aside`: `set_aside`, the transaction of one record that kept aborting.

Nothing here does I/O or mutates what it is given: the caller installs a result only after
its transaction commits.
"""
