package eventledger.bench;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.math.BigInteger;
import java.util.Collections;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Pattern;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.processor.StreamPartitioner;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;
import org.msgpack.core.MessageBufferPacker;
import org.msgpack.core.MessagePack;
import org.msgpack.core.MessageUnpacker;
import org.msgpack.value.Value;

/**
 * The seed article's topology (command → validate against a state store → reply, event and
 * public state, all in one Kafka transaction) with eventledger's ledger rules
 * (ledger/decide.py) and eventledger's record formats (topology/codec.py: msgpack envelopes),
 * so that the bench checks its output exactly as it checks the others'.
 *
 * <p>Arguments: key=value pairs (bootstrap, app_id, commands, replies, events, state,
 * reply_lanes, state_dir, threads, commit_interval_ms). Speaks the bench's line protocol
 * (bench/wire.py) on stdout: "ready" once RUNNING, "progress" every 0.5 s, "report" once
 * closed after "stop" (or the end of stdin) on stdin.
 */
public final class LedgerStreams {
  static final long MAX = Long.MAX_VALUE; // ledger.state.MAX_MINOR_UNITS = 2**63 - 1
  static final Pattern CURRENCY = Pattern.compile("[A-Z]{3}");
  static final String STORE = "accounts";
  static final AtomicLong PROCESSED = new AtomicLong();
  static final AtomicLong FIRST_AT_MS = new AtomicLong();
  static final AtomicLong LAST_AT_MS = new AtomicLong();

  /** A record value with the output partition it goes to. */
  record Out(int partition, byte[] bytes) {}

  /** The internal state, as eventledger's Account: [status, currency, balance, limit, version]. */
  record Account(String status, String currency, long balance, long overdraftLimit, long version) {
    byte[] encode() {
      try (MessageBufferPacker p = MessagePack.newDefaultBufferPacker()) {
        p.packArrayHeader(5).packString(status).packString(currency);
        p.packLong(balance).packLong(overdraftLimit).packLong(version);
        return p.toByteArray();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }

    static Account decode(byte[] data) {
      try (MessageUnpacker u = MessagePack.newDefaultUnpacker(data)) {
        u.unpackArrayHeader();
        return new Account(
            u.unpackString(), u.unpackString(), u.unpackLong(), u.unpackLong(), u.unpackLong());
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
  }

  /** A command as decoded from its envelope (topology.envelopes.CommandEnvelope). */
  static final class Command {
    String commandId;
    String aggregateId;
    String type;
    Long expectedVersion;
    Long replyTo;
    Map<String, Value> payload = new HashMap<>();
  }

  /** An integer field that may not fit a long (msgspec ints go up to 2**64 - 1). */
  static BigInteger bigInt(Value v) {
    return v == null || !v.isIntegerValue() ? null : v.asIntegerValue().asBigInteger();
  }

  static Command decodeCommand(byte[] data) throws IOException {
    Command c = new Command();
    try (MessageUnpacker u = MessagePack.newDefaultUnpacker(data)) {
      int n = u.unpackMapHeader();
      for (int i = 0; i < n; i++) {
        String field = u.unpackString();
        Value v = u.unpackValue();
        switch (field) {
          case "command_id" -> c.commandId = v.asStringValue().asString();
          case "aggregate_id" -> c.aggregateId = v.asStringValue().asString();
          case "type" -> c.type = v.asStringValue().asString();
          case "expected_version" -> c.expectedVersion = v.isNilValue() ? null : v.asIntegerValue().toLong();
          case "reply_to" -> c.replyTo = v.isNilValue() ? null : v.asIntegerValue().toLong();
          case "payload" -> {
            for (Map.Entry<Value, Value> e : v.asMapValue().entrySet()) {
              c.payload.put(e.getKey().asStringValue().asString(), e.getValue());
            }
          }
          default -> { }
        }
      }
    }
    if (c.commandId == null || c.aggregateId == null || c.type == null) {
      throw new IOException("not a command envelope");
    }
    return c;
  }

  /** A rejection (ledger.rejections) or an accepted event. */
  record Decision(String code, String message, String event, Map<String, Object> fields) {
    static Decision reject(String code, String message) {
      return new Decision(code, message, null, null);
    }

    static Decision accept(String event, Map<String, Object> fields) {
      return new Decision(null, "", event, fields);
    }
  }

  /** ledger.decide.decide, check for check in the same order. */
  static Decision decide(Account state, Command c) {
    long version = state == null ? 0 : state.version();
    if (c.expectedVersion != null && c.expectedVersion != version) {
      return Decision.reject("version_conflict",
          "expected version " + c.expectedVersion + ", account is at version " + version);
    }
    BigInteger amount = bigInt(c.payload.get("amount"));
    switch (c.type) {
      case "OpenAccount" -> {
        Value cur = c.payload.get("currency");
        String currency = cur == null ? "" : cur.asStringValue().asString();
        BigInteger limit = c.payload.containsKey("overdraft_limit")
            ? bigInt(c.payload.get("overdraft_limit")) : BigInteger.ZERO;
        if (!CURRENCY.matcher(currency).matches()) {
          return Decision.reject("invalid_command",
              "currency must be three uppercase letters, got '" + currency + "'");
        }
        if (limit.signum() < 0 || limit.compareTo(BigInteger.valueOf(MAX)) > 0) {
          return Decision.reject("invalid_command",
              "overdraft limit must be in [0, " + MAX + "], got " + limit);
        }
        if (state == null) {
          Map<String, Object> f = new java.util.LinkedHashMap<>();
          f.put("currency", currency);
          f.put("overdraft_limit", limit.longValue());
          return Decision.accept("AccountOpened", f);
        }
        if (state.status().equals("closed")) {
          return Decision.reject("account_closed", "the account is closed; ids are not reused");
        }
        return Decision.reject("already_open", "the account is already open");
      }
      case "Deposit", "Withdraw" -> {
        if (amount.signum() <= 0) {
          return Decision.reject("amount_not_positive", "amount must be positive, got " + amount);
        }
        if (amount.compareTo(BigInteger.valueOf(MAX)) > 0) {
          return Decision.reject("limit_exceeded", "amount must be at most " + MAX);
        }
      }
      case "CloseAccount" -> { }
      default -> throw new IllegalArgumentException("unknown command type " + c.type);
    }
    if (state == null) {
      return Decision.reject("unknown_account", "no such account");
    }
    if (state.status().equals("closed")) {
      return Decision.reject("account_closed", "the account is closed");
    }
    Map<String, Object> f = new java.util.LinkedHashMap<>();
    switch (c.type) {
      case "Deposit" -> {
        BigInteger after = BigInteger.valueOf(state.balance()).add(amount);
        if (after.compareTo(BigInteger.valueOf(MAX)) > 0) {
          return Decision.reject("limit_exceeded", "the balance would exceed " + MAX);
        }
        f.put("amount", amount.longValue());
        return Decision.accept("Deposited", f);
      }
      case "Withdraw" -> {
        BigInteger available =
            BigInteger.valueOf(state.balance()).add(BigInteger.valueOf(state.overdraftLimit()));
        if (available.compareTo(amount) < 0) {
          return Decision.reject("insufficient_funds",
              "cannot withdraw " + amount + ": " + available + " available");
        }
        f.put("amount", amount.longValue());
        return Decision.accept("Withdrawn", f);
      }
      default -> {
        if (state.balance() != 0) {
          return Decision.reject("nonzero_balance", "balance is " + state.balance() + ", not 0");
        }
        return Decision.accept("AccountClosed", f);
      }
    }
  }

  /** ledger.evolve.evolve. */
  static Account evolve(Account s, Decision d) {
    return switch (d.event()) {
      case "AccountOpened" -> new Account("open", (String) d.fields().get("currency"), 0,
          (Long) d.fields().get("overdraft_limit"), 1);
      case "Deposited" -> new Account(s.status(), s.currency(),
          s.balance() + (Long) d.fields().get("amount"), s.overdraftLimit(), s.version() + 1);
      case "Withdrawn" -> new Account(s.status(), s.currency(),
          s.balance() - (Long) d.fields().get("amount"), s.overdraftLimit(), s.version() + 1);
      default -> new Account("closed", s.currency(), s.balance(), s.overdraftLimit(),
          s.version() + 1);
    };
  }

  static void packValue(MessageBufferPacker p, Object v) throws IOException {
    if (v instanceof String s) {
      p.packString(s);
    } else {
      p.packLong((Long) v);
    }
  }

  /** topology.codec.encode_reply: ["reply", command_id, aggregate_id, accepted, code, message, version]. */
  static byte[] encodeReply(Command c, Decision d, long version) throws IOException {
    try (MessageBufferPacker p = MessagePack.newDefaultBufferPacker()) {
      p.packArrayHeader(7).packString("reply").packString(c.commandId).packString(c.aggregateId);
      p.packBoolean(d.code() == null);
      if (d.code() == null) {
        p.packNil();
      } else {
        p.packString(d.code());
      }
      p.packString(d.message()).packLong(version);
      return p.toByteArray();
    }
  }

  /** topology.codec.encode_event: an EventEnvelope map with the tagged event as payload. */
  static byte[] encodeEvent(Command c, Decision d, long sequence, long nowMs) throws IOException {
    byte[] payload;
    try (MessageBufferPacker p = MessagePack.newDefaultBufferPacker()) {
      p.packMapHeader(1 + d.fields().size()).packString("type").packString(d.event());
      for (Map.Entry<String, Object> e : d.fields().entrySet()) {
        p.packString(e.getKey());
        packValue(p, e.getValue());
      }
      payload = p.toByteArray();
    }
    try (MessageBufferPacker p = MessagePack.newDefaultBufferPacker()) {
      p.packMapHeader(7);
      p.packString("aggregate_id").packString(c.aggregateId);
      p.packString("sequence").packLong(sequence);
      p.packString("type").packString(d.event());
      p.packString("schema_version").packLong(1);
      p.packString("payload");
      p.writePayload(payload);
      p.packString("command_id").packString(c.commandId);
      p.packString("timestamp_ms").packLong(nowMs);
      return p.toByteArray();
    }
  }

  /** topology.codec.encode_view: the AccountView map. */
  static byte[] encodeView(Account a) throws IOException {
    try (MessageBufferPacker p = MessagePack.newDefaultBufferPacker()) {
      p.packMapHeader(5);
      p.packString("status").packString(a.status());
      p.packString("currency").packString(a.currency());
      p.packString("balance").packLong(a.balance());
      p.packString("overdraft_limit").packLong(a.overdraftLimit());
      p.packString("version").packLong(a.version());
      return p.toByteArray();
    }
  }

  /** The one processor: validate against the store, then reply, event, state. */
  static final class LedgerProcessor implements Processor<byte[], byte[], byte[], Out> {
    private final int replyLanes;
    private ProcessorContext<byte[], Out> context;
    private KeyValueStore<String, byte[]> store;

    LedgerProcessor(int replyLanes) {
      this.replyLanes = replyLanes;
    }

    @Override
    public void init(ProcessorContext<byte[], Out> context) {
      this.context = context;
      this.store = context.getStateStore(STORE);
    }

    @Override
    public void process(Record<byte[], byte[]> record) {
      long now = System.currentTimeMillis();
      FIRST_AT_MS.compareAndSet(0, now);
      int partition = context.recordMetadata().map(m -> m.partition()).orElse(0);
      Command c;
      try {
        c = decodeCommand(record.value());
        byte[] stored = store.get(c.aggregateId);
        Account state = stored == null ? null : Account.decode(stored);
        Decision d = decide(state, c);
        long version = state == null ? 0 : state.version();
        if (d.code() == null) {
          state = evolve(state, d);
          version = state.version();
          store.put(c.aggregateId, state.encode());
        }
        if (c.replyTo != null) {
          int lane = (int) (c.replyTo % replyLanes);
          byte[] reply = encodeReply(c, d, version);
          context.forward(new Record<>(c.commandId.getBytes(), new Out(partition * replyLanes + lane,
              reply), now), "replies");
        }
        if (d.code() == null) {
          byte[] key = c.aggregateId.getBytes();
          context.forward(new Record<>(key, new Out(partition, encodeEvent(c, d, version, now)),
              now), "events");
          context.forward(new Record<>(key, new Out(partition, encodeView(state)), now), "state");
        }
      } catch (IOException | RuntimeException e) {
        System.err.println("poison command skipped: " + e);
      }
      PROCESSED.incrementAndGet();
      LAST_AT_MS.set(now);
    }
  }

  static final class OutSerializer implements Serializer<Out> {
    @Override
    public byte[] serialize(String topic, Out data) {
      return data == null ? null : data.bytes();
    }
  }

  static final class OutPartitioner implements StreamPartitioner<byte[], Out> {
    @Override
    public Optional<Set<Integer>> partitions(String topic, byte[] key, Out value, int n) {
      return Optional.of(Collections.singleton(value.partition() % n));
    }
  }

  static synchronized void emit(String kind, String fields) {
    System.out.println("{\"kind\": \"" + kind + "\"" + (fields.isEmpty() ? "" : ", " + fields) + "}");
    System.out.flush();
  }

  static String counters() {
    return "\"processed\": " + PROCESSED.get() + ", \"first_at\": " + FIRST_AT_MS.get() / 1000.0
        + ", \"last_at\": " + LAST_AT_MS.get() / 1000.0;
  }

  public static void main(String[] args) throws Exception {
    Map<String, String> a = new HashMap<>();
    for (String arg : args) {
      int eq = arg.indexOf('=');
      a.put(arg.substring(0, eq), arg.substring(eq + 1));
    }
    int lanes = Integer.parseInt(a.getOrDefault("reply_lanes", "1"));
    Topology topology = new Topology();
    topology.addSource("commands", new ByteArrayDeserializer(), new ByteArrayDeserializer(),
        a.get("commands"));
    topology.addProcessor("ledger", () -> new LedgerProcessor(lanes), "commands");
    topology.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(STORE),
        Serdes.String(), Serdes.ByteArray()), "ledger");
    for (String sink : new String[] {"replies", "events", "state"}) {
      topology.addSink(sink, a.get(sink), new ByteArraySerializer(), new OutSerializer(),
          new OutPartitioner(), "ledger");
    }
    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, a.get("app_id"));
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, a.get("bootstrap"));
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, a.getOrDefault("commit_interval_ms", "100"));
    p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, a.getOrDefault("threads", "2"));
    p.put(StreamsConfig.STATE_DIR_CONFIG, a.get("state_dir"));
    p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    p.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
    KafkaStreams streams = new KafkaStreams(topology, p);
    CountDownLatch stopped = new CountDownLatch(1);
    streams.setStateListener((now, before) -> {
      if (now == KafkaStreams.State.RUNNING) {
        emit("ready", "\"kafka_streams\": \"" + a.getOrDefault("version", "4.1.1") + "\"");
      } else if (now == KafkaStreams.State.ERROR) {
        System.err.println("Kafka Streams went to ERROR");
        stopped.countDown();
      }
    });
    Thread stdin = new Thread(() -> {
      try (java.io.BufferedReader in = new java.io.BufferedReader(
          new java.io.InputStreamReader(System.in, java.nio.charset.StandardCharsets.UTF_8))) {
        String line;
        while ((line = in.readLine()) != null && !line.strip().equals("stop")) {
          continue;
        }
      } catch (IOException e) {
        System.err.println("stdin: " + e);
      }
      stopped.countDown();
    }, "stdin");
    stdin.setDaemon(true);
    stdin.start();
    streams.start();
    while (!stopped.await(500, java.util.concurrent.TimeUnit.MILLISECONDS)) {
      emit("progress", counters());
    }
    boolean error = streams.state() == KafkaStreams.State.ERROR;
    streams.close(java.time.Duration.ofSeconds(30));
    emit("report", counters() + ", \"error\": " + error);
    System.exit(error ? 1 : 0);
  }
}
