"""A pynsq consumer for replication_failover.py: appends every body it gets to a file.

usage: python pynsq_consumer.py TOPIC CHANNEL LOOKUPD_HTTP OUT_FILE DELAY_MS
(one message at a time, each taking DELAY_MS: a consumer that lags)"""
import sys
import time

import nsq

topic, channel, lookupd, out = sys.argv[1:5]
delay = int(sys.argv[5]) / 1000
sink = open(out, "a", buffering=1)


def handle(message):
    time.sleep(delay)
    sink.write(message.body.decode() + "\n")
    return True


nsq.Reader(topic=topic, channel=channel, lookupd_http_addresses=[lookupd],
           message_handler=handle, lookupd_poll_interval=1, max_in_flight=1)
nsq.run()
