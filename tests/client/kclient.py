#!/usr/bin/env python3
"""kclient: an independent, real Kafka client (confluent-kafka / librdkafka) for kferry's tests.

Every subcommand prints exactly one JSON object on stdout; diagnostics go to stderr.
Exit status: 0 on success, 1 on a failed check or incomplete read, 2 on usage or client errors.

Subcommands
  create-topic  --bootstrap B --topic T --partitions N [--config k=v ...] [--if-not-exists]
  delete-topic  --bootstrap B --topic T
  describe-topic --bootstrap B --topic T          -> {"partitions": N, "config": {...}}
  list-topics   --bootstrap B                      -> {"topics": {name: partitions}}
  produce       --bootstrap B --topic T [--partitions N] --count C [--start S] [--seed X]
                [--codec none|gzip|snappy|lz4|zstd] [--idempotent] [--batch-size BYTES]
                [--linger-ms MS] [--value-size BYTES] [--rate PER_SEC]
                [--transactional-id ID --txn-size K --abort-every M [--hold-open-file F]]
  consume       --bootstrap B --topic T [--partitions N] [--expect C] [--timeout-s S]
                [--summary] [--isolation read_committed|read_uncommitted]
  verify        --source B1 --target B2 --topic T [--target-topic T2] [--partitions N]
                [--wait-s S] [--ignore-partition] [--ignore-timestamp] [--require-offsets-equal]
  watermarks    --bootstrap B --topic T [--partitions N]
  commit-offsets --bootstrap B --group G --topic T --offset P=O [--offset P=O ...]
  group-offsets  --bootstrap B --group G --topic T [--partitions N]
  group-consume  --bootstrap B --group G --topic T [--topic T2 ...] --partitions N [--per-partition K]
                 [--reset earliest|latest|error] [--isolation ...] [--timeout-s S] [--hold-file F]
                 A subscribed group member: reads K records of each partition (all to the end
                 without K) from the group's committed offsets, commits, optionally stays in
                 the group until F exists -> {"partitions": {"T:p": [{offset, i}]}, "committed": {"T:p": o}}

The generated workload (produce) is a pure function of (seed, i):
  partition  = i % N
  key        = None if i % 10 == 0 else b"k{i % 97}"
  value      = b"{seed}:{i}:" + deterministic filler, value-size bytes in total
  headers    = ("i", str(i)); + ("h2", None) if i % 3 == 0; + ("dup", "a"), ("dup", "b") if i % 5 == 0;
               + ("e", b"") if i % 11 == 0
  timestamp  = BASE_TS + i (CreateTime)
so the generator index i, recovered from header "i", identifies every record on any cluster.
"""

import argparse
import hashlib
import json
import random
import sys
import time
import uuid

from confluent_kafka import (
    KafkaError,
    KafkaException,
    Consumer,
    Producer,
    TopicPartition,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
)
from confluent_kafka.admin import AdminClient, NewTopic, ConfigResource

BASE_TS = 1_700_000_000_000
POOL_SIZE = 1 << 16
SAMPLE = 10


class Failure(Exception):
    """A check failed or a read was incomplete: exit 1 (JSON result already decided)."""


def eprint(*a):
    print(*a, file=sys.stderr, flush=True)


def emit(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":"), sort_keys=True))
    sys.stdout.write("\n")
    sys.stdout.flush()


def base_conf(bootstrap, extra=None):
    conf = {
        "bootstrap.servers": bootstrap,
        "client.id": "kclient",
        "broker.address.family": "v4",
        "socket.timeout.ms": 10000,
    }
    if extra:
        conf.update(extra)
    return conf


def hexb(b):
    return None if b is None else b.hex()


# --------------------------------------------------------------------------- workload


class Workload:
    def __init__(self, seed, value_size):
        self.seed = seed
        self.value_size = value_size
        rng = random.Random(seed)
        # Compressible (16-letter alphabet) but not trivially so.
        alphabet = b"abcdefghijklmnop"
        table = bytes(alphabet[b & 15] for b in range(256))
        pool = rng.getrandbits(8 * POOL_SIZE).to_bytes(POOL_SIZE, "little").translate(table)
        self.pool2 = pool + pool

    def key(self, i):
        return None if i % 10 == 0 else b"k%d" % (i % 97)

    def value(self, i):
        prefix = b"%d:%d:" % (self.seed, i)
        need = self.value_size - len(prefix)
        if need <= 0:
            return prefix
        off = (i * 7919) % POOL_SIZE
        if need <= POOL_SIZE:
            return prefix + self.pool2[off:off + need]
        reps = need // POOL_SIZE + 2
        return prefix + (self.pool2[off:off + POOL_SIZE] * reps)[:need]

    def headers(self, i):
        h = [("i", str(i).encode())]
        if i % 3 == 0:
            h.append(("h2", None))
        if i % 5 == 0:
            h.append(("dup", b"a"))
            h.append(("dup", b"b"))
        if i % 11 == 0:
            h.append(("e", b""))
        return h

    def timestamp(self, i):
        return BASE_TS + i


# --------------------------------------------------------------------------- metadata helpers


def topic_partitions(bootstrap, topic, timeout=10.0):
    """Partition count of topic, or None if it does not exist."""
    admin = AdminClient(base_conf(bootstrap))
    md = admin.list_topics(topic=topic, timeout=timeout)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return None
    return len(t.partitions)


def resolve_partitions(args, bootstrap, topic):
    if args.partitions is not None:
        return args.partitions
    n = topic_partitions(bootstrap, topic)
    if n is None:
        raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, "topic %s not found on %s" % (topic, bootstrap)))
    return n


def watermarks(bootstrap, topic, partitions, isolation="read_committed", timeout=10.0):
    c = Consumer(base_conf(bootstrap, {"group.id": "kclient-wm-" + uuid.uuid4().hex, "isolation.level": isolation}))
    try:
        out = {}
        for p in range(partitions):
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout, cached=False)
            out[p] = (lo, hi)
        return out
    finally:
        c.close()


# --------------------------------------------------------------------------- consuming

TRANSIENT = {
    KafkaError._UNKNOWN_PARTITION,
    KafkaError._UNKNOWN_TOPIC,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError._TIMED_OUT,
    KafkaError.REQUEST_TIMED_OUT,
}


def ts_type_name(t):
    if t == TIMESTAMP_CREATE_TIME:
        return "create"
    if t == TIMESTAMP_LOG_APPEND_TIME:
        return "log_append"
    return "none"


def record_of(msg):
    headers = msg.headers() or []
    i = None
    for k, v in headers:
        if k == "i" and v is not None:
            try:
                i = int(v)
            except ValueError:
                pass
            break
    tst, ts = msg.timestamp()
    val = msg.value()
    return {
        "offset": msg.offset(),
        "i": i,
        "key": hexb(msg.key()),
        "value_len": None if val is None else len(val),
        "value_sha": None if val is None else hashlib.sha256(val).hexdigest(),
        "headers": [[k, hexb(v)] for k, v in headers],
        "ts": ts,
        "ts_type": ts_type_name(tst),
    }


def consume_records(bootstrap, topic, partitions, expect=None, timeout_s=30.0, isolation="read_committed"):
    """Read every partition from offset 0 to its end (and until `expect` records in total).

    Returns (records_by_partition, info) where info has complete/errors/transient."""
    c = Consumer(base_conf(bootstrap, {
        "group.id": "kclient-" + uuid.uuid4().hex,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "check.crcs": True,
        "isolation.level": isolation,
        "auto.offset.reset": "earliest",
        "max.partition.fetch.bytes": 16 * 1024 * 1024,
        "fetch.max.bytes": 64 * 1024 * 1024,
        "message.max.bytes": 64 * 1024 * 1024,
        "receive.message.max.bytes": 100 * 1024 * 1024,
        "topic.metadata.refresh.interval.ms": 1000,
        "fetch.wait.max.ms": 100,
    }))
    recs = {p: [] for p in range(partitions)}
    eof = {p: False for p in range(partitions)}
    errors, transient = [], []
    total = 0
    deadline = time.monotonic() + timeout_s
    complete = False
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        while True:
            if all(eof.values()) and (expect is None or total >= expect):
                complete = True
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for msg in c.consume(num_messages=10000, timeout=min(0.5, left)):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        if msg.partition() in eof:
                            eof[msg.partition()] = True
                    elif err.code() in TRANSIENT and not err.fatal():
                        if len(transient) < SAMPLE:
                            transient.append(str(err))
                    else:
                        errors.append(str(err))
                        eprint("consume error:", err)
                    continue
                p = msg.partition()
                recs[p].append(record_of(msg))
                eof[p] = False
                total += 1
            if errors:
                break
    finally:
        c.close()
    return recs, {"complete": complete and not errors, "errors": errors[:SAMPLE], "transient": transient, "total": total}


def partition_summary(rs):
    h = hashlib.sha256()
    for r in rs:
        h.update(json.dumps([r["key"], r["value_sha"], r["headers"], r["ts"], r["ts_type"]], separators=(",", ":")).encode())
        h.update(b"\n")
    offs = [r["offset"] for r in rs]
    return {
        "count": len(rs),
        "first_offset": offs[0] if offs else None,
        "last_offset": offs[-1] if offs else None,
        "contiguous": all(b == a + 1 for a, b in zip(offs, offs[1:])),
        "digest": h.hexdigest(),
    }


# --------------------------------------------------------------------------- verify


def lis_len(seq):
    """Length of the longest strictly increasing subsequence."""
    import bisect
    tails = []
    for x in seq:
        k = bisect.bisect_left(tails, x)
        if k == len(tails):
            tails.append(x)
        else:
            tails[k] = x
    return len(tails)


def record_ids(recs):
    """Map each record to an identity: generator index i, or content fingerprint + occurrence."""
    out = {}
    for p, rs in recs.items():
        seen = {}
        ids = []
        for r in rs:
            if r["i"] is not None:
                ids.append(("i", r["i"]))
            else:
                fp = (r["key"], r["value_sha"], json.dumps(r["headers"]), r["ts"])
                n = seen.get(fp, 0)
                seen[fp] = n + 1
                ids.append(("fp", p, fp, n))
        out[p] = ids
    return out


def id_str(ident):
    return str(ident[1]) if ident[0] == "i" else "p%d:%s…#%d" % (ident[1], (ident[2][1] or "null")[:12], ident[3])


def compare(src, dst, ignore_partition=False, ignore_timestamp=False):
    src_ids, dst_ids = record_ids(src), record_ids(dst)
    # identity -> (partition, position, record)
    where = {}
    for p, ids in src_ids.items():
        for pos, ident in enumerate(ids):
            where[ident] = (p, pos, src[p][pos])
    seen = set()
    dup = extra = mism = reord = offs_eq = 0
    samples = {"lost": [], "duplicated": [], "reordered": [], "mismatched": [], "extra": []}

    def sample(kind, v):
        if len(samples[kind]) < SAMPLE:
            samples[kind].append(v)

    for p, ids in dst_ids.items():
        by_src_part = {}
        for pos, ident in enumerate(ids):
            r = dst[p][pos]
            if ident not in where:
                extra += 1
                sample("extra", {"partition": p, "offset": r["offset"], "id": id_str(ident)})
                continue
            if ident in seen:
                dup += 1
                sample("duplicated", {"partition": p, "offset": r["offset"], "id": id_str(ident)})
                continue
            seen.add(ident)
            sp, spos, sr = where[ident]
            diffs = []
            if sp != p and not ignore_partition:
                diffs.append("partition")
            for f in ("key", "value_sha", "value_len", "headers"):
                if sr[f] != r[f]:
                    diffs.append(f)
            if not ignore_timestamp and (sr["ts"] != r["ts"] or sr["ts_type"] != r["ts_type"]):
                diffs.append("timestamp")
            if diffs:
                mism += 1
                sample("mismatched", {"partition": p, "offset": r["offset"], "id": id_str(ident), "fields": diffs})
            if sp == p and sr["offset"] == r["offset"]:
                offs_eq += 1
            by_src_part.setdefault(sp, []).append((spos, r["offset"], ident))
        for sp, seq in by_src_part.items():
            positions = [s for s, _, _ in seq]
            n_out = len(positions) - lis_len(positions)
            if n_out:
                reord += n_out
                for (a, _, _), (b, off, ident) in zip(seq, seq[1:]):
                    if b < a:
                        sample("reordered", {"partition": p, "offset": off, "id": id_str(ident)})
    lost = 0
    for p, ids in src_ids.items():
        for pos, ident in enumerate(ids):
            if ident not in seen:
                lost += 1
                sample("lost", {"partition": p, "offset": src[p][pos]["offset"], "id": id_str(ident)})
    return {
        "records": sum(len(v) for v in src.values()),
        "target_records": sum(len(v) for v in dst.values()),
        "lost": lost,
        "duplicated": dup,
        "reordered": reord,
        "mismatched": mism,
        "extra": extra,
        "offsets_equal": offs_eq,
        "samples": {k: v for k, v in samples.items() if v},
    }


# --------------------------------------------------------------------------- commands


def cmd_create_topic(a):
    config = {}
    for kv in a.config or []:
        k, _, v = kv.partition("=")
        config[k] = v
    admin = AdminClient(base_conf(a.bootstrap))
    fut = admin.create_topics([NewTopic(a.topic, num_partitions=a.partitions, replication_factor=a.replication_factor, config=config)],
                              operation_timeout=10, request_timeout=15)[a.topic]
    existed = False
    try:
        fut.result()
    except KafkaException as e:
        if a.if_not_exists and e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
            existed = True
        else:
            raise
    # Wait until metadata shows the topic with all partitions.
    deadline = time.monotonic() + 10
    n = None
    while time.monotonic() < deadline:
        n = topic_partitions(a.bootstrap, a.topic)
        if n is not None and (existed or n == a.partitions):
            break
        time.sleep(0.1)
    emit({"topic": a.topic, "created": not existed, "partitions": n, "config": config})


def cmd_delete_topic(a):
    admin = AdminClient(base_conf(a.bootstrap))
    admin.delete_topics([a.topic], operation_timeout=10, request_timeout=15)[a.topic].result()
    emit({"topic": a.topic, "deleted": True})


def cmd_describe_topic(a):
    admin = AdminClient(base_conf(a.bootstrap))
    n = topic_partitions(a.bootstrap, a.topic)
    if n is None:
        raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, "topic %s not found" % a.topic))
    out = {"topic": a.topic, "partitions": n}
    try:
        res = ConfigResource(ConfigResource.Type.TOPIC, a.topic)
        cfg = admin.describe_configs([res], request_timeout=10)[res].result()
        out["config"] = {k: v.value for k, v in cfg.items()}
        out["config_non_default"] = {k: v.value for k, v in cfg.items() if not v.is_default}
    except KafkaException as e:
        out["config_error"] = str(e)
    emit(out)


def cmd_alter_config(a):
    # IncrementalAlterConfigs (KIP-339) SET of each K=V; other configs stay as they are.
    from confluent_kafka.admin import ConfigEntry, AlterConfigOpType
    entries = []
    for kv in a.config:
        k, _, v = kv.partition("=")
        entries.append(ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET))
    admin = AdminClient(base_conf(a.bootstrap))
    res = ConfigResource(ConfigResource.Type.TOPIC, a.topic, incremental_configs=entries)
    admin.incremental_alter_configs([res], request_timeout=15)[res].result()
    emit({"topic": a.topic, "altered": [e.name for e in entries]})


def cmd_list_topics(a):
    admin = AdminClient(base_conf(a.bootstrap))
    md = admin.list_topics(timeout=10)
    emit({"topics": {t: len(m.partitions) for t, m in md.topics.items() if m.error is None}})


def cmd_produce(a):
    n = resolve_partitions(a, a.bootstrap, a.topic)
    wl = Workload(a.seed, a.value_size)
    conf = {
        "compression.type": a.codec,
        "linger.ms": a.linger_ms,
        "batch.size": a.batch_size,
        "batch.num.messages": 1_000_000,
        "queue.buffering.max.messages": 2_000_000,
        "queue.buffering.max.kbytes": 2 * 1024 * 1024,
        "message.max.bytes": max(1_000_000, a.value_size + 65536, a.batch_size + 65536),
        "acks": "all",
        "enable.idempotence": bool(a.idempotent or a.transactional_id),
        "message.timeout.ms": 120000,
    }
    if a.transactional_id:
        conf["transactional.id"] = a.transactional_id
        conf["transaction.timeout.ms"] = 120000
    p = Producer(base_conf(a.bootstrap, conf))
    state = {"ok": 0, "err": 0, "first_err": None}

    def on_delivery(err, _msg):
        if err is None or err.code() == KafkaError._PURGE_QUEUE:
            state["ok"] += 1
        else:
            state["err"] += 1
            if state["first_err"] is None:
                state["first_err"] = str(err)

    txn = a.transactional_id is not None
    if txn:
        p.init_transactions(30)
    t0 = time.monotonic()
    nbytes = 0
    aborted = 0
    txn_no = 0
    in_txn = 0
    end = a.start + a.count
    for i in range(a.start, end):
        if txn and in_txn == 0:
            p.begin_transaction()
        k, v = wl.key(i), wl.value(i)
        nbytes += len(v) + (len(k) if k else 0)
        while True:
            try:
                p.produce(a.topic, value=v, key=k, partition=i % n, timestamp=wl.timestamp(i),
                          headers=wl.headers(i), on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        if txn:
            in_txn += 1
            if in_txn == a.txn_size or i == end - 1:
                if i == end - 1 and a.hold_open_file:
                    hold_open(p, a.hold_open_file, a.hold_timeout_s)
                if a.abort_every and txn_no % a.abort_every == a.abort_every - 1:
                    # Flush first so the aborted records really reach the log (otherwise
                    # librdkafka just purges them locally and the broker never sees them).
                    p.flush(60)
                    p.abort_transaction(60)
                    aborted += in_txn
                else:
                    p.commit_transaction(60)
                txn_no += 1
                in_txn = 0
        if (i - a.start) % 1000 == 999:
            p.poll(0)
            if a.rate:
                ahead = (i - a.start + 1) / a.rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
    remaining = p.flush(120)
    secs = time.monotonic() - t0
    out = {"produced": state["ok"], "bytes": nbytes, "start": a.start, "end": end, "partitions": n,
           "errors": state["err"], "seconds": round(secs, 3)}
    if txn:
        out["aborted"] = aborted
        out["committed"] = a.count - aborted
    if state["first_err"]:
        out["first_error"] = state["first_err"]
    emit(out)
    # Aborted records are reported as delivered by librdkafka only if they were acked; don't count on it.
    if remaining or state["err"] or (not txn and state["ok"] != a.count):
        eprint("produce failed: %d undelivered, %d errors, first: %s" % (remaining, state["err"], state["first_err"]))
        raise Failure()


def hold_open(p, path, timeout_s):
    """Keeps the current transaction open, its records flushed to the log, until `path` exists."""
    import os
    p.flush(60)
    eprint("holding the last transaction open until %s exists" % path)
    deadline = time.monotonic() + timeout_s
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            eprint("hold-open: %s did not appear within %.0fs" % (path, timeout_s))
            raise Failure()
        time.sleep(0.05)


def cmd_consume(a):
    n = resolve_partitions(a, a.bootstrap, a.topic)
    recs, info = consume_records(a.bootstrap, a.topic, n, a.expect, a.timeout_s, a.isolation)
    out = {"topic": a.topic, "total": info["total"], "complete": info["complete"]}
    if info["errors"]:
        out["errors"] = info["errors"]
    if a.summary:
        out["partitions"] = {str(p): partition_summary(rs) for p, rs in recs.items()}
    else:
        out["partitions"] = {str(p): rs for p, rs in recs.items()}
    emit(out)
    if not info["complete"]:
        eprint("consume incomplete: %d records after %.1fs (expect=%s) errors=%s transient=%s"
               % (info["total"], a.timeout_s, a.expect, info["errors"], info["transient"]))
        raise Failure()


def cmd_verify(a):
    ttopic = a.target_topic or a.topic
    n = resolve_partitions(a, a.source, a.topic)
    tn = a.target_partitions if a.target_partitions is not None else n
    src, sinfo = consume_records(a.source, a.topic, n, None, a.timeout_s, a.isolation)
    if not sinfo["complete"]:
        emit({"error": "source read incomplete", "source": sinfo})
        raise Failure()
    total = sinfo["total"]
    dst, dinfo = consume_records(a.target, ttopic, tn, total if a.wait_s else None,
                                 a.wait_s if a.wait_s else a.timeout_s, a.isolation)
    out = compare(src, dst, a.ignore_partition, a.ignore_timestamp)
    out["target_complete"] = dinfo["complete"]
    if dinfo["errors"]:
        out["target_errors"] = dinfo["errors"]
    out["ok"] = all(out[k] == 0 for k in ("lost", "duplicated", "reordered", "mismatched", "extra"))
    if a.require_offsets_equal and out["offsets_equal"] != out["records"]:
        out["ok"] = False
    if dinfo["errors"]:
        out["ok"] = False
    emit(out)
    if not out["ok"]:
        eprint("verify failed: " + json.dumps({k: out[k] for k in ("records", "target_records", "lost", "duplicated",
                                                                   "reordered", "mismatched", "extra", "offsets_equal")}))
        raise Failure()


def cmd_watermarks(a):
    n = resolve_partitions(a, a.bootstrap, a.topic)
    wm = watermarks(a.bootstrap, a.topic, n, a.isolation)
    emit({"topic": a.topic, "partitions": {str(p): {"low": lo, "high": hi} for p, (lo, hi) in wm.items()},
          "total": sum(hi - lo for lo, hi in wm.values())})


def cmd_commit_offsets(a):
    tps = []
    for po in a.offset:
        p, _, o = po.partition("=")
        tps.append(TopicPartition(a.topic, int(p), int(o)))
    c = Consumer(base_conf(a.bootstrap, {"group.id": a.group, "enable.auto.commit": False}))
    try:
        res = c.commit(offsets=tps, asynchronous=False)
    finally:
        c.close()
    bad = [str(tp.error) for tp in res or [] if tp.error is not None]
    emit({"group": a.group, "topic": a.topic, "committed": {str(tp.partition): tp.offset for tp in tps}, "errors": bad})
    if bad:
        raise Failure()


def cmd_group_offsets(a):
    n = resolve_partitions(a, a.bootstrap, a.topic)
    c = Consumer(base_conf(a.bootstrap, {"group.id": a.group, "enable.auto.commit": False}))
    try:
        res = c.committed([TopicPartition(a.topic, p) for p in range(n)], timeout=10)
    finally:
        c.close()
    # librdkafka reports "no committed offset" as OFFSET_INVALID (-1001); map it to null.
    emit({"group": a.group, "topic": a.topic,
          "offsets": {str(tp.partition): (tp.offset if tp.offset >= 0 else None) for tp in res}})


def cmd_group_consume(a):
    import os
    want = {(t, p) for t in a.topic for p in range(a.partitions)}
    c = Consumer(base_conf(a.bootstrap, {
        "group.id": a.group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "check.crcs": True,
        "isolation.level": a.isolation,
        "auto.offset.reset": a.reset,
        # tansu holds a JoinGroup for a while; short timeouts keep the join quick.
        "session.timeout.ms": 6000,
        "max.poll.interval.ms": 7000,
        "fetch.wait.max.ms": 100,
    }))
    recs = {k: [] for k in want}
    done = set()
    errors = []
    deadline = time.monotonic() + a.timeout_s
    committed = {}
    try:
        c.subscribe(list(a.topic))
        while done != want and time.monotonic() < deadline and not errors:
            for msg in c.consume(num_messages=1000, timeout=0.2):
                err = msg.error()
                key = (msg.topic(), msg.partition())
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        done.add(key)
                    elif err.code() not in TRANSIENT or err.fatal():
                        errors.append(str(err))
                    continue
                if key not in want or key in done:
                    continue
                recs[key].append({"offset": msg.offset(), "i": record_of(msg)["i"]})
                if a.per_partition is not None and len(recs[key]) >= a.per_partition:
                    done.add(key)
                    c.pause([TopicPartition(msg.topic(), msg.partition())])
        tps = [TopicPartition(t, p, rs[-1]["offset"] + 1) for (t, p), rs in recs.items() if rs]
        if tps and not errors:
            for tp in c.commit(offsets=tps, asynchronous=False) or []:
                if tp.error is not None:
                    errors.append(str(tp.error))
                else:
                    committed["%s:%d" % (tp.topic, tp.partition)] = tp.offset
        if a.hold_file:
            eprint("group-consume: staying in group %s until %s exists" % (a.group, a.hold_file))
            hold_deadline = time.monotonic() + a.hold_timeout_s
            while not os.path.exists(a.hold_file) and time.monotonic() < hold_deadline:
                c.poll(0.1)
    finally:
        c.close()
    out = {"group": a.group, "complete": done == want and not errors, "committed": committed,
           "partitions": {"%s:%d" % k: rs for k, rs in sorted(recs.items())}}
    if errors:
        out["errors"] = errors[:SAMPLE]
    emit(out)
    if not out["complete"]:
        eprint("group-consume incomplete: done %d of %d partitions, errors %s" % (len(done), len(want), errors[:SAMPLE]))
        raise Failure()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="kclient", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def topic_args(sp, partitions_required=False, bootstrap=True):
        if bootstrap:
            sp.add_argument("--bootstrap", required=True)
        sp.add_argument("--topic", required=True)
        sp.add_argument("--partitions", type=int, required=partitions_required,
                        default=None, help="partition count (default: from metadata)")

    sp = sub.add_parser("create-topic")
    topic_args(sp, partitions_required=True)
    sp.add_argument("--config", action="append", metavar="K=V")
    sp.add_argument("--replication-factor", type=int, default=1)
    sp.add_argument("--if-not-exists", action="store_true")
    sp.set_defaults(fn=cmd_create_topic)

    sp = sub.add_parser("delete-topic")
    sp.add_argument("--bootstrap", required=True)
    sp.add_argument("--topic", required=True)
    sp.set_defaults(fn=cmd_delete_topic)

    sp = sub.add_parser("describe-topic")
    sp.add_argument("--bootstrap", required=True)
    sp.add_argument("--topic", required=True)
    sp.set_defaults(fn=cmd_describe_topic)

    sp = sub.add_parser("list-topics")
    sp.add_argument("--bootstrap", required=True)
    sp.set_defaults(fn=cmd_list_topics)

    sp = sub.add_parser("produce")
    topic_args(sp)
    sp.add_argument("--count", type=int, required=True)
    sp.add_argument("--start", type=int, default=0, help="first generator index i (to continue a workload)")
    sp.add_argument("--seed", type=int, default=1)
    sp.add_argument("--codec", choices=["none", "gzip", "snappy", "lz4", "zstd"], default="none")
    sp.add_argument("--idempotent", action="store_true")
    sp.add_argument("--batch-size", type=int, default=1_000_000)
    sp.add_argument("--linger-ms", type=int, default=50)
    sp.add_argument("--value-size", type=int, default=100)
    sp.add_argument("--rate", type=float, default=None, help="records per second (default: unthrottled)")
    sp.add_argument("--transactional-id", default=None)
    sp.add_argument("--txn-size", type=int, default=100)
    sp.add_argument("--abort-every", type=int, default=0, help="abort every M-th transaction (0: never)")
    sp.add_argument("--hold-open-file", default=None,
                    help="keep the last transaction open (records flushed) until this file exists, then end it")
    sp.add_argument("--hold-timeout-s", type=float, default=90.0)
    sp.set_defaults(fn=cmd_produce)

    sp = sub.add_parser("consume")
    topic_args(sp)
    sp.add_argument("--expect", type=int, default=None)
    sp.add_argument("--timeout-s", type=float, default=30.0)
    sp.add_argument("--summary", action="store_true", help="per-partition count/offsets/digest instead of records")
    sp.add_argument("--isolation", choices=["read_committed", "read_uncommitted"], default="read_committed")
    sp.set_defaults(fn=cmd_consume)

    sp = sub.add_parser("verify")
    sp.add_argument("--source", required=True)
    sp.add_argument("--target", required=True)
    topic_args(sp, bootstrap=False)
    sp.add_argument("--target-topic", default=None)
    sp.add_argument("--target-partitions", type=int, default=None)
    sp.add_argument("--timeout-s", type=float, default=60.0, help="limit for reading each side to its end")
    sp.add_argument("--wait-s", type=float, default=0.0,
                    help="wait up to S seconds for the target to hold as many records as the source")
    sp.add_argument("--ignore-partition", action="store_true")
    sp.add_argument("--ignore-timestamp", action="store_true")
    sp.add_argument("--require-offsets-equal", action="store_true")
    sp.add_argument("--isolation", choices=["read_committed", "read_uncommitted"], default="read_committed")
    sp.set_defaults(fn=cmd_verify)

    sp = sub.add_parser("watermarks")
    topic_args(sp)
    sp.add_argument("--isolation", choices=["read_committed", "read_uncommitted"], default="read_uncommitted")
    sp.set_defaults(fn=cmd_watermarks)

    sp = sub.add_parser("commit-offsets")
    sp.add_argument("--bootstrap", required=True)
    sp.add_argument("--group", required=True)
    sp.add_argument("--topic", required=True)
    sp.add_argument("--offset", action="append", required=True, metavar="P=O")
    sp.set_defaults(fn=cmd_commit_offsets)

    sp = sub.add_parser("alter-config")
    sp.add_argument("--bootstrap", required=True)
    sp.add_argument("--topic", required=True)
    sp.add_argument("--config", action="append", required=True, metavar="K=V")
    sp.set_defaults(fn=cmd_alter_config)

    sp = sub.add_parser("group-offsets")
    topic_args(sp)
    sp.add_argument("--group", required=True)
    sp.set_defaults(fn=cmd_group_offsets)

    sp = sub.add_parser("group-consume")
    sp.add_argument("--bootstrap", required=True)
    sp.add_argument("--group", required=True)
    sp.add_argument("--topic", action="append", required=True)
    sp.add_argument("--partitions", type=int, required=True, help="partition count of every topic")
    sp.add_argument("--per-partition", type=int, default=None, help="records to read per partition (default: to the end)")
    sp.add_argument("--reset", choices=["earliest", "latest", "error"], default="earliest",
                    help="auto.offset.reset for partitions without a committed offset")
    sp.add_argument("--isolation", choices=["read_committed", "read_uncommitted"], default="read_committed")
    sp.add_argument("--timeout-s", type=float, default=60.0)
    sp.add_argument("--hold-file", default=None, help="after committing, stay in the group until this file exists")
    sp.add_argument("--hold-timeout-s", type=float, default=120.0)
    sp.set_defaults(fn=cmd_group_consume)

    a = ap.parse_args(argv)
    try:
        a.fn(a)
    except Failure:
        return 1
    except KafkaException as e:
        eprint("kclient %s: kafka error: %s" % (a.cmd, e))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
