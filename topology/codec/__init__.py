"""The one codec boundary: no other module turns records into bytes or back.

One module per record format (import each name from the module that defines it):

- `wire`: the shared msgpack encoder, `CodecError` and the decode helper every format uses;
- `keys`: record keys (aggregate ids, id-memory keys, history index keys, `TOUCH_KEY`);
- `commands`: command envelopes, client and internal, and the poison classification;
- `replies`: replies records (a client's answer, or an id memory entry);
- `events`: event envelopes, with upcasting on read;
- `snapshots`: snapshot records (header, msgpack, lz4 where it pays);
- `checkpoint`: the checkpoint record of a snapshots partition;
- `state`: the state topic's records (an aggregate's public view, a partition's flows);
- `aggregate`: `Codec`, the formats that depend on an aggregate's types, bound to it once.
"""

__all__: list[str] = []
