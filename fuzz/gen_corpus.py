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
        "gzip": batch(0, two, 1, attributes=1, compress=gzip.compress),
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


if __name__ == "__main__":
    main()
