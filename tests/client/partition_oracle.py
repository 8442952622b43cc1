#!/usr/bin/env python3
"""Where does the Java client's default partitioner put each key? Ask librdkafka.

librdkafka's `murmur2_random` partitioner is documented as Java-compatible: keyed records go
to toPositive(murmur2(key)) % partitions, exactly as the Java producer's default partitioner.
This produces one record per key to a topic that already has the wanted partition count and
reports the partition librdkafka chose, as JSON {"partitions": {key: partition}}.

usage: partition_oracle.py BOOTSTRAP TOPIC KEY [KEY ...]
"""
import json
import sys

from confluent_kafka import Producer


def main():
    bootstrap, topic, keys = sys.argv[1], sys.argv[2], sys.argv[3:]
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random",
                         "broker.address.family": "v4"})
    placed = {}
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            placed[msg.key().decode()] = msg.partition()

    for key in keys:
        producer.produce(topic, key=key.encode(), value=b"", on_delivery=report)
    producer.flush(30)
    if errors or len(placed) != len(keys):
        print(json.dumps({"errors": errors, "placed": len(placed)}), file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"partitions": placed}))


if __name__ == "__main__":
    main()
