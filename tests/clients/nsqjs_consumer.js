// An nsqjs consumer for replication_failover.py: appends every body it gets to a file.
//
// usage: node nsqjs_consumer.js TOPIC CHANNEL LOOKUPD_HTTP OUT_FILE DELAY_MS
// (one message at a time, each finished DELAY_MS after it came: a consumer that lags)
const fs = require('fs');
const nsq = require('nsqjs');

const [topic, channel, lookupd, out, delayMs] = process.argv.slice(2);
const reader = new nsq.Reader(topic, channel, {
  lookupdHTTPAddresses: lookupd,
  lookupdPollInterval: 1,
  maxInFlight: 1,
});
reader.on('message', (message) => {
  fs.appendFileSync(out, message.body.toString() + '\n');
  setTimeout(() => message.finish(), Number(delayMs));
});
// A killed nsqd is an error to the reader; lookupd tells it where to go next.
reader.on('error', () => {});
reader.connect();
