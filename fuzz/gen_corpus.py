#!/usr/bin/env python3
"""Writes the small seed corpus in fuzz/corpus/<target>/ (committed; rerun to refresh).

Independent of kferry's code: batches are encoded here from Kafka's v2 layout
(DefaultRecordBatch.java / DefaultRecord.java) with a bit-serial CRC-32C.
Usage: python3 fuzz/gen_corpus.py
"""
import gzip
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def varint(v):
    u = ((v << 1) ^ (v >> 63)) & (2**64 - 1)
    out = b""
    while u >= 0x80:
        out += bytes([(u & 0x7F) | 0x80])
        u >>= 7
    return out + bytes([u])


def nullable(b):
    return varint(-1) if b is None else varint(len(b)) + b


def record(offset_delta, value, key=None, ts_delta=0, headers=()):
    body = b"\x00" + varint(ts_delta) + varint(offset_delta) + nullable(key) + nullable(value)
    body += varint(len(headers))
    for k, v in headers:
        body += varint(len(k)) + k + nullable(v)
    return varint(len(body)) + body


def batch(base_offset, records, last_delta, attributes=0, producer=(-1, -1, -1),
          leader_epoch=-1, ts=1_700_000_000_000, max_ts=None, compress=None):
    payload = b"".join(records)
    if compress:
        payload = compress(payload)
    after_crc = struct.pack(">hiqqqhii", attributes, last_delta, ts,
                            ts if max_ts is None else max_ts, *producer, len(records))
    crc = crc32c(after_crc + payload)
    length = 61 - 12 + len(payload)
    return struct.pack(">qiibI", base_offset, length, leader_epoch, 2, crc) + after_crc + payload


def legacy(offset, magic, value):
    body = struct.pack(">bb", magic, 0)
    if magic == 1:
        body += struct.pack(">q", 1_700_000_000_000)
    body += struct.pack(">i", -1) + struct.pack(">i", len(value)) + value
    msg = struct.pack(">I", crc32_ieee(body)) + body
    return struct.pack(">qi", offset, len(msg)) + msg


def crc32_ieee(data):
    import zlib
    return zlib.crc32(data) & 0xFFFFFFFF


# ---- codecs, written from their format specifications (no compression library) -------

def xxh32(data, seed=0):
    p1, p2, p3, p4, p5 = 0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F, 0x165667B1
    m = 0xFFFFFFFF
    rotl = lambda x, r: ((x << r) | (x >> (32 - r))) & m
    n, i = len(data), 0
    if n >= 16:
        acc = [(seed + p1 + p2) & m, (seed + p2) & m, seed, (seed - p1) & m]
        while i + 16 <= n:
            for lane in range(4):
                w = struct.unpack_from("<I", data, i + 4 * lane)[0]
                acc[lane] = (rotl((acc[lane] + w * p2) & m, 13) * p1) & m
            i += 16
        h = (rotl(acc[0], 1) + rotl(acc[1], 7) + rotl(acc[2], 12) + rotl(acc[3], 18)) & m
    else:
        h = (seed + p5) & m
    h = (h + n) & m
    while i + 4 <= n:
        h = (rotl((h + struct.unpack_from("<I", data, i)[0] * p3) & m, 17) * p4) & m
        i += 4
    while i < n:
        h = (rotl((h + data[i] * p5) & m, 11) * p1) & m
        i += 1
    h ^= h >> 15
    h = (h * p2) & m
    h ^= h >> 13
    h = (h * p3) & m
    return h ^ (h >> 16)


def uvarint(u):
    out = b""
    while u >= 0x80:
        out += bytes([(u & 0x7F) | 0x80])
        u >>= 7
    return out + bytes([u])


def matches(data, min_len, max_len, max_offset, stop):
    """Greedy LZ77 parse: yields (literal_start, literal_end, offset, length)."""
    last, lit, i = {}, 0, 0
    while i + min_len <= stop:
        key = data[i:i + min_len]
        j = last.get(key)
        last[key] = i
        if j is not None and i - j <= max_offset:
            length = min_len
            while i + length < stop and length < max_len and data[j + length] == data[i + length]:
                length += 1
            yield lit, i, i - j, length
            i += length
            lit = i
        else:
            i += 1
    yield lit, len(data), 0, 0


def snappy_raw(data):
    """A raw snappy block (format_description.txt): literals and 2-byte-offset copies."""
    out = uvarint(len(data))

    def literal(chunk):
        res = b""
        for k in range(0, len(chunk), 65536):
            part = chunk[k:k + 65536]
            n = len(part) - 1
            if n < 60:
                res += bytes([n << 2])
            elif n < 256:
                res += bytes([60 << 2, n])
            else:
                res += bytes([61 << 2]) + struct.pack("<H", n)
            res += part
        return res

    for start, end, offset, length in matches(data, 4, 64, 65535, len(data)):
        out += literal(data[start:end])
        if length:
            out += bytes([((length - 1) << 2) | 2]) + struct.pack("<H", offset)
    return out


XERIAL = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)


def snappy_xerial(data, block=32 << 10):
    out = XERIAL
    for k in range(0, len(data), block):
        b = snappy_raw(data[k:k + block])
        out += struct.pack(">i", len(b)) + b
    return out


def lz4_block(data):
    """LZ4 block format: sequences of literals and matches; the last 5 bytes are
    literals and no match starts within the last 12."""
    out = b""

    def length_bytes(n):
        res = b""
        while n >= 255:
            res += b"\xff"
            n -= 255
        return res + bytes([n])

    stop = max(0, len(data) - 12)
    for start, end, offset, length in matches(data, 4, 1 << 16, 65535, stop):
        if length and end + length > len(data) - 5:
            length = max(0, len(data) - 5 - end)
            if length < 4:
                length = 0
        if not length:
            end = len(data)
        lit = end - start
        token = (min(lit, 15) << 4) | (min(length - 4, 15) if length else 0)
        out += bytes([token]) + (length_bytes(lit - 15) if lit >= 15 else b"") + data[start:end]
        if not length:
            break
        out += struct.pack("<H", offset) + (length_bytes(length - 19) if length - 4 >= 15 else b"")
    return out


def lz4_frame(data, kafka_v0_checksum=False, uncompressed_blocks=False):
    """LZ4 frame (lz4_Frame_format.md): independent 64 KiB blocks, no checksums.
    kafka_v0_checksum: the header checksum pre-KIP-57 Kafka wrote (over the magic too)."""
    magic = struct.pack("<I", 0x184D2204)
    desc = bytes([0x60, 0x40])
    hc = (xxh32((magic if kafka_v0_checksum else b"") + desc) >> 8) & 0xFF
    out = magic + desc + bytes([hc])
    for k in range(0, len(data), 65536):
        chunk = data[k:k + 65536]
        block = lz4_block(chunk)
        if uncompressed_blocks or len(block) >= len(chunk):
            out += struct.pack("<I", len(chunk) | 0x80000000) + chunk
        else:
            out += struct.pack("<I", len(block)) + block
    return out + struct.pack("<I", 0)


def zstd_frame(data, rle=False):
    """A zstd frame (RFC 8878) of raw blocks, or one RLE block when rle (data must then
    repeat one byte). Single segment, with the content size."""
    n = len(data)
    if n < 256:
        header = bytes([0x20, n])
    elif n < 65536 + 256:
        header = bytes([0x60]) + struct.pack("<H", n - 256)
    else:
        header = bytes([0xA0]) + struct.pack("<I", n)
    out = struct.pack("<I", 0xFD2FB528) + header
    if rle:
        assert len(set(data)) <= 1
        return out + struct.pack("<I", 1 | (1 << 1) | (n << 3))[:3] + data[:1]
    blocks = [data[k:k + (128 << 10)] for k in range(0, n, 128 << 10)] or [b""]
    for i, b in enumerate(blocks):
        last = 1 if i == len(blocks) - 1 else 0
        out += struct.pack("<I", last | (len(b) << 3))[:3] + b
    return out


COMPRESS = {
    1: lambda raw: gzip.compress(raw, mtime=0),
    2: snappy_xerial,
    3: lz4_frame,
    4: zstd_frame,
}


# ---- Kafka responses (FetchResponse.json, ProduceResponse.json) ----------------------

class W:
    def __init__(self, flexible):
        self.flex, self.b = flexible, b""

    def raw(self, b):
        self.b += b
        return self

    def i16(self, v):
        return self.raw(struct.pack(">h", v))

    def i32(self, v):
        return self.raw(struct.pack(">i", v))

    def i64(self, v):
        return self.raw(struct.pack(">q", v))

    def string(self, s):
        if s is None:
            return self.raw(uvarint(0) if self.flex else struct.pack(">h", -1))
        s = s.encode()
        return self.raw((uvarint(len(s) + 1) if self.flex else struct.pack(">h", len(s))) + s)

    def array(self, items, each):
        if items is None:
            return self.raw(uvarint(0) if self.flex else struct.pack(">i", -1))
        self.raw(uvarint(len(items) + 1) if self.flex else struct.pack(">i", len(items)))
        for item in items:
            each(item)
        return self

    def bytes_(self, b):
        if b is None:
            return self.raw(uvarint(0) if self.flex else struct.pack(">i", -1))
        return self.raw((uvarint(len(b) + 1) if self.flex else struct.pack(">i", len(b))) + b)

    def tags(self, fields=()):
        if self.flex:
            self.raw(uvarint(len(fields)))
            for tag, data in fields:
                self.raw(uvarint(tag) + uvarint(len(data)) + data)
        return self


def node_endpoints(endpoints):
    """The top-level NodeEndpoints tagged field (tag 0): [(node_id, host, port, rack)]."""
    w = W(True)
    w.array(endpoints, lambda e: (w.i32(e[0]).string(e[1]).i32(e[2]).string(e[3]), w.tags()))
    return [(0, w.b)]


def fetch_response(version, topics, session_id=0, current_leader=None, endpoints=None):
    """topics: [(name, topic_id bytes, [(partition, records, aborted list or None)])]."""
    w = W(version >= 12)
    w.i32(0)  # throttle_time_ms
    if version >= 7:
        w.i16(0).i32(session_id)

    def partition(p):
        index, records, aborted = p
        w.i32(index).i16(0).i64(100).i64(100).i64(0)  # error, HW, LSO, log start (v5+)
        if version < 5:
            w.b = w.b[:-8]
        w.array(aborted, lambda a: (w.i64(a[0]).i64(a[1]), w.tags()))
        if version >= 11:
            w.i32(-1)  # preferred_read_replica
        w.bytes_(records)
        tagged = []
        if current_leader is not None and version >= 12:
            tagged.append((1, struct.pack(">ii", *current_leader) + b"\x00"))
        w.tags(tagged)

    def topic(t):
        name, topic_id, partitions = t
        if version >= 13:
            w.raw(topic_id)
        else:
            w.string(name)
        w.array(partitions, partition)
        w.tags()

    w.array(topics, topic)
    w.tags(node_endpoints(endpoints) if endpoints and version >= 16 else [])
    return w.b


def produce_response(version, topics, message=None, current_leader=None, endpoints=None):
    """topics: [(name, topic_id bytes, [(partition, error_code, base_offset)])]."""
    w = W(version >= 9)

    def partition(p):
        index, error, base = p
        w.i32(index).i16(error).i64(base).i64(-1)
        if version >= 5:
            w.i64(0)
        if version >= 8:
            w.array([(0, message)] if message else [], lambda e: (w.i32(e[0]).string(e[1]), w.tags()))
            w.string(message)
        tagged = []
        if current_leader is not None and version >= 10:
            tagged.append((0, struct.pack(">ii", *current_leader) + b"\x00"))
        w.tags(tagged)

    def topic(t):
        name, topic_id, partitions = t
        if version >= 13:
            w.raw(topic_id)
        else:
            w.string(name)
        w.array(partitions, partition)
        w.tags()

    w.array(topics, topic)
    w.i32(0)  # throttle_time_ms
    w.tags(node_endpoints(endpoints) if endpoints and version >= 10 else [])
    return w.b


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    two = [record(0, b"a", key=b"k"), record(1, b"bb", ts_delta=3, headers=[(b"h", b"v")])]
    batches = {
        "plain": batch(0, two, 1, max_ts=1_700_000_000_003),
        "idempotent": batch(5, [record(0, b"v", key=b"k")], 0, producer=(1000, 2, 7), leader_epoch=3),
        "gapped": batch(10, [record(0, b"x"), record(2, b"z")], 2),
        "gzip": batch(0, two, 1, attributes=1, compress=lambda raw: gzip.compress(raw, mtime=0)),
        "control_commit": batch(9, [record(0, b"\x00\x00\x00\x00\x00\x04", key=b"\x00\x00\x00\x01")], 0,
                                attributes=0x30, producer=(77, 0, -1)),
        "empty": batch(20, [], 4),
        "log_append_txn": batch(3, two, 1, attributes=0x18, producer=(5, 1, 0)),
    }
    for name, b in batches.items():
        write("batch_parse", name, b)
        write("rewrite_roundtrip", name, struct.pack(">qhi", 4242, 0, 0) + b)
    corrupt = bytearray(batches["plain"])
    corrupt[-1] ^= 0xFF
    write("batch_parse", "bad_crc", bytes(corrupt))
    write("rewrite_roundtrip", "bad_crc", struct.pack(">qhi", 1, 1, 1) + bytes(corrupt))

    b0 = batch(0, two, 1)
    b2 = batch(2, [record(0, b"c")], 0)
    b3 = batch(3, two, 1)
    write("blob_iter", "truncated_tail", struct.pack(">q", 0) + b0 + b2 + b3[:-7])
    write("blob_iter", "straddling", struct.pack(">q", 1) + b0 + b2)
    write("blob_iter", "legacy_then_v2", struct.pack(">q", 0)
          + legacy(0, 1, b"old") + legacy(1, 0, b"older") + b2)
    write("blob_iter", "below_fetch_offset", struct.pack(">q", 3) + b0 + b2 + b3)

    slow_path(two)
    legacy_sets()
    codecs()
    responses(b0, b2)


def slow_path(two):
    """slow_path_decode: ctl (codec|flags, max_batch_bytes u16, route codec) ‖ batch."""
    def ctl(out_codec=0, max_bytes=0xFFFF, route=5, keep_crc=False, pre=0, fail=False):
        return bytes([out_codec | (8 if keep_crc else 0) | (pre << 4) | (0x80 if fail else 0)]) + \
            struct.pack(">H", max_bytes) + bytes([route])

    gapped = [record(0, b"x", key=b"k1"), record(3, b"yy", ts_delta=-2), record(7, None, key=b"k3",
              headers=[(b"h", b"v"), (b"h2", None)])]
    raw_gapped = b"".join(gapped)
    many = [record(i, bytes([65 + i % 26]) * (10 + 7 * i), key=b"key%d" % i, ts_delta=i) for i in range(24)]
    seeds = {
        "gaps_plain": ctl() + batch(100, gapped, 9),
        "gaps_log_append": ctl() + batch(100, gapped, 7, attributes=0x08, max_ts=1_700_000_000_999),
        "gaps_delete_horizon": ctl(out_codec=1, route=0) + batch(5, gapped, 7, attributes=0x40),
        "recompress_zstd": ctl(out_codec=4, route=4) + batch(0, two, 1),
        "split_plain": ctl(max_bytes=300) + batch(0, many, 23),
        "split_lz4": ctl(out_codec=3, max_bytes=400, route=3) + batch(0, many, 23, attributes=3,
                                                                      compress=lz4_frame),
        "oversize_fail": ctl(max_bytes=100, fail=True) + batch(0, two, 1),
        "bad_crc_kept": ctl(keep_crc=True, route=1) + batch(0, gapped, 7)[:-1] + b"\x00",
        "control": ctl(route=1) + batch(9, [record(0, b"\x00\x00\x00\x00\x00\x04", key=b"\x00\x00\x00\x01")],
                                        0, attributes=0x30, producer=(77, 0, -1)),
        "empty": ctl(route=2) + batch(20, [], 4),
        "backwards": ctl() + batch(0, [record(3, b"a"), record(1, b"b")], 3),
        "pre_compress_snappy": ctl(out_codec=0, pre=2, route=0) + batch(0, gapped, 7),
        "pre_compress_zstd": ctl(out_codec=2, pre=4, max_bytes=120) + batch(0, many, 30),
    }
    for codec, compress in COMPRESS.items():
        seeds["gaps_codec%d" % codec] = ctl(out_codec=codec, route=5) + batch(
            40, gapped, 7, attributes=codec, compress=compress)
        seeds["recompress_codec%d_to_none" % codec] = ctl(out_codec=0, route=0, max_bytes=250) + batch(
            0, many, 23, attributes=codec, compress=compress)
    seeds["gzip_multi_member"] = ctl(out_codec=1) + batch(
        0, many, 30, attributes=1, compress=lambda raw: gzip.compress(raw[:200], mtime=0) + gzip.compress(raw[200:], mtime=0))
    seeds["snappy_raw_block"] = ctl(out_codec=2) + batch(0, many, 30, attributes=2, compress=snappy_raw)
    seeds["zstd_rle_garbage"] = ctl(out_codec=4) + batch(0, many, 23, attributes=4,
                                                          compress=lambda raw: zstd_frame(b"\x00" * 300, rle=True))
    for name, data in seeds.items():
        write("slow_path_decode", name, data)


def legacy_message(offset, magic, value, key=None, attributes=0, ts=1_700_000_000_000, bad_crc=False):
    body = struct.pack(">bb", magic, attributes)
    if magic == 1:
        body += struct.pack(">q", ts)
    body += struct.pack(">i", -1) if key is None else struct.pack(">i", len(key)) + key
    body += struct.pack(">i", -1) if value is None else struct.pack(">i", len(value)) + value
    crc = crc32_ieee(body) ^ (1 if bad_crc else 0)
    msg = struct.pack(">I", crc) + body
    return struct.pack(">qi", offset, len(msg)) + msg


def legacy_sets():
    """legacy_decode: ctl (mode/wrapper flags, codec, max_batch_bytes u16, wrapper offset
    i64) ‖ message set."""
    def ctl(flags=0, codec=0, max_bytes=0xFFFF, wrapper_offset=0):
        return bytes([flags, codec]) + struct.pack(">Hq", max_bytes, wrapper_offset)

    v0 = [legacy_message(10, 0, b"zero", key=b"k"), legacy_message(11, 0, None)]
    v1 = [legacy_message(12, 1, b"one", key=b"k", ts=1_700_000_000_001),
          legacy_message(13, 1, b"unset", ts=-5)]
    inner_rel = [legacy_message(i, 1, b"inner-%d" % i, ts=1_700_000_000_000 + i) for i in range(3)]
    inner_abs = [legacy_message(50 + i, 0, b"inner-%d" % i) for i in range(3)]
    seeds = {
        "plain_v0": ctl() + b"".join(v0),
        "plain_v1_to_gzip": ctl(codec=1) + b"".join(v1),
        "mixed_split": ctl(codec=0, max_bytes=80) + b"".join(v0 + v1),
        "bad_crc": ctl() + legacy_message(1, 1, b"x", bad_crc=True),
        "fixup_me": ctl(flags=1) + legacy_message(1, 1, b"x", bad_crc=True) + b"\x00" * 26,
        "out_of_order": ctl() + legacy_message(5, 0, b"a") + legacy_message(4, 0, b"b"),
        "bad_magic": ctl(flags=1) + legacy_message(1, 1, b"x")[:16] + b"\x02" + legacy_message(1, 1, b"x")[17:],
    }
    for codec, name in [(1, "gzip"), (2, "snappy"), (3, "lz4")]:
        compress = COMPRESS[codec]
        seeds["wrapper_v1_" + name] = ctl(codec=codec % 5) + legacy_message(
            102, 1, compress(b"".join(inner_rel)), attributes=codec)
        seeds["wrapper_v0_" + name] = ctl(codec=4) + legacy_message(
            52, 0, compress(b"".join(inner_abs)), attributes=codec)
        # Mode 2: the harness wraps the inner set with this codec.
        seeds["harness_wraps_" + name] = ctl(flags=2 | (codec << 2) | 0x10, wrapper_offset=1000) + b"".join(inner_rel)
    seeds["wrapper_v1_librdkafka_zero"] = ctl() + legacy_message(
        0, 1, gzip.compress(b"".join(inner_rel), mtime=0), attributes=1)
    seeds["wrapper_v1_log_append"] = ctl() + legacy_message(
        102, 1, gzip.compress(b"".join(inner_rel), mtime=0), attributes=1 | 8, ts=1_600_000_000_000)
    seeds["wrapper_v0_lz4_kafka_checksum"] = ctl() + legacy_message(
        52, 0, lz4_frame(b"".join(inner_abs), kafka_v0_checksum=True), attributes=3)
    seeds["wrapper_v1_lz4_kafka_checksum"] = ctl() + legacy_message(
        102, 1, lz4_frame(b"".join(inner_rel), kafka_v0_checksum=True), attributes=3)
    seeds["wrapper_zstd_refused"] = ctl() + legacy_message(102, 1, zstd_frame(b"".join(inner_rel)), attributes=4)
    seeds["wrapper_nested"] = ctl() + legacy_message(
        200, 1, gzip.compress(legacy_message(0, 1, gzip.compress(b"".join(inner_rel), mtime=0), attributes=1),
                              mtime=0), attributes=1)
    seeds["harness_wraps_lz4_v0_checksum"] = ctl(flags=3 | (3 << 2) | 0x40) + b"".join(inner_abs)
    for name, data in seeds.items():
        write("legacy_decode", name, data)


def codecs():
    """codec_decompress: max_out (u16) ‖ payload."""
    text = b"".join(b"record %d: the quick brown fox; " % (i % 17) for i in range(120))
    big = struct.pack(">H", 0xFFFF)
    seeds = {
        "gzip": big + gzip.compress(text, mtime=0),
        "gzip_two_members": big + gzip.compress(text[:100], mtime=0) + gzip.compress(text[100:], mtime=0),
        "gzip_capped": struct.pack(">H", 1000) + gzip.compress(text, mtime=0),
        "snappy_raw": big + snappy_raw(text),
        "snappy_xerial": big + snappy_xerial(text, block=1024),
        "snappy_xerial_concat": big + snappy_xerial(text[:500]) + snappy_xerial(text[500:]),
        "snappy_bomb": big + uvarint(1 << 30) + b"\x00",
        "lz4": big + lz4_frame(text),
        "lz4_uncompressed_blocks": big + lz4_frame(text, uncompressed_blocks=True),
        "lz4_kafka_v0_checksum": big + lz4_frame(text, kafka_v0_checksum=True),
        "lz4_capped": struct.pack(">H", 100) + lz4_frame(text),
        "zstd_raw": big + zstd_frame(text),
        "zstd_rle": struct.pack(">H", 5000) + zstd_frame(b"z" * 4000, rle=True),
        "zstd_two_frames": big + zstd_frame(text[:300]) + zstd_frame(b"a" * 50, rle=True),
        "empty": big,
        "garbage": big + b"definitely not compressed",
    }
    for name, data in seeds.items():
        write("codec_decompress", name, data)


def responses(b0, b2):
    """response_decode: selector (bit 0 Fetch/Produce, version above) ‖ fetch offset ‖ body."""
    def fetch(version, fetch_offset, topics, **kw):
        return bytes([(version - 4) << 1]) + struct.pack(">q", fetch_offset) + fetch_response(version, topics, **kw)

    def produce(version, topics, **kw):
        return bytes([((version - 3) << 1) | 1]) + struct.pack(">q", 0) + produce_response(version, topics, **kw)

    txn = lambda base, pid, recs: batch(base, [record(i, b"t%d" % i) for i in range(recs)], recs - 1,
                                        attributes=0x10, producer=(pid, 0, 0))
    marker = lambda base, pid, kind: batch(base, [record(0, b"\x00\x00\x00\x00\x00\x00",
                                                         key=struct.pack(">hh", 0, kind))], 0,
                                           attributes=0x30, producer=(pid, 0, -1))
    plain = lambda base: batch(base, [record(0, b"p")], 0)
    committed = txn(0, 7, 2) + plain(2) + marker(3, 7, 1) + plain(4)
    aborted = txn(0, 9, 1) + txn(1, 8, 1) + marker(2, 9, 0) + plain(3) + marker(4, 8, 1)
    open_txn = txn(10, 5, 3) + batch(13, [record(0, b"a"), record(4, b"b")], 4)
    legacy_tail = legacy_message(0, 1, b"old") + legacy_message(1, 0, b"older") + b2
    topic_id = bytes(range(16))
    seeds = {}
    for v in [4, 5, 7, 11, 12, 13, 15, 16, 17]:
        seeds["fetch_v%d_committed" % v] = fetch(v, 0, [("orders", topic_id, [(0, committed, [])])])
    seeds["fetch_v4_aborted_listed"] = fetch(4, 0, [("t", topic_id, [(0, aborted, [(9, 0)]), (1, None, None)])])
    seeds["fetch_v12_aborted_by_marker"] = fetch(12, 0, [("t", topic_id, [(0, aborted, None)])],
                                                 current_leader=(1, 5))
    seeds["fetch_v16_open_txn_truncated"] = fetch(16, 10, [("t", topic_id, [(3, open_txn + b0[:30], [])])])
    seeds["fetch_v11_legacy"] = fetch(11, 0, [("t", topic_id, [(0, legacy_tail, None)]),
                                              ("u", topic_id, [(0, b0, None)])])
    seeds["fetch_v13_straddling"] = fetch(13, 1, [("t", topic_id, [(0, b0 + b2, None)])])
    endpoints = [(1, "broker-1", 9092, None), (2, "broker-2", 9093, "rack-b")]
    seeds["fetch_v16_not_leader_endpoints"] = fetch(16, 0, [("t", topic_id, [(0, None, None)])],
                                                    current_leader=(2, 7), endpoints=endpoints)
    for v in [3, 5, 8, 9, 10, 12, 13]:
        seeds["produce_v%d" % v] = produce(v, [("orders", topic_id, [(0, 0, 42), (1, 47, -1)])],
                                           message="bad record" if v >= 8 else None)
    seeds["produce_v10_not_leader_endpoints"] = produce(10, [("orders", topic_id, [(0, 6, -1)])],
                                                        current_leader=(2, 7), endpoints=endpoints)
    for name, data in seeds.items():
        write("response_decode", name, data)


if __name__ == "__main__":
    main()
