#!/usr/bin/env python3
"""Deferred messages: DPUB throughput, nsqd's RSS and CPU per million deferred messages
(all in memory, and past --max-deferred-memory, spilled to disk), then the graceful
exit and the restart with them all waiting: how long each takes, and the RSS after; then
a consumer, for which the channel reads every deferred message from its disk queue
before its time: the RSS while they wait.

Each case starts a fresh nsqd on a temporary data dir (loopback only), creates one
channel, and publishes COUNT DPUBs of SIZE bytes deferred 1 h with `nsq-bench writer
--defer 1h --count COUNT` (2 connections, 200 DPUBs sent together before their OKs).

usage: python3 bench/deferred.py target/release/nsqd target/release/nsq-bench [COUNT] [SIZE]
       [cases: memory,spilled]"""
import functools, json, os, re, shutil, signal, subprocess, sys, tempfile, time, urllib.request

print = functools.partial(print, flush=True)

nsqd, bench = sys.argv[1], sys.argv[2]
count = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
size = int(sys.argv[4]) if len(sys.argv) > 4 else 100
cases = (sys.argv[5] if len(sys.argv) > 5 else "memory,spilled").split(",")
TCP, HTTP = "127.0.0.1:24450", "127.0.0.1:24451"
FLAGS = {"memory": ["--max-deferred-memory=1000000000000"], "spilled": []}


procs = []


def start(data, flags):
    proc = subprocess.Popen([nsqd, "--data-path", data, "--tcp-address", TCP,
                             "--http-address", HTTP, "--log-level", "warn"] + flags)
    procs.append(proc)
    t0 = time.time()
    while True:
        try:
            urllib.request.urlopen(f"http://{HTTP}/ping").read()
            return proc, time.time() - t0
        except OSError:
            time.sleep(0.02)


def rss_mib(proc, field="VmRSS"):
    for line in open(f"/proc/{proc.pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024


def cpu_s(proc):
    f = open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def deferred_count():
    s = json.load(urllib.request.urlopen(f"http://{HTTP}/stats?format=json&topic=d"))
    return sum(c["deferred_count"] for t in s["topics"] for c in t["channels"])


def backend_depth():
    s = json.load(urllib.request.urlopen(f"http://{HTTP}/stats?format=json&topic=d"))
    return sum(c["backend_depth"] for t in s["topics"] for c in t["channels"])


def du_mib(data):
    total = 0
    for name in os.listdir(data):
        total += os.path.getsize(os.path.join(data, name))
    return total / 2**20


def run_case(case):
    data = tempfile.mkdtemp(dir=os.environ.get("BENCH_DIR"))
    proc, _ = start(data, FLAGS[case])
    try:
        measure(case, data, proc)
    finally:
        for started in procs:
            if started.poll() is None:
                started.kill()
                started.wait()
        shutil.rmtree(data)


def measure(case, data, proc):
    for path in ["topic/create?topic=d", "channel/create?topic=d&channel=c"]:
        urllib.request.urlopen(urllib.request.Request(f"http://{HTTP}/{path}",
                                                      method="POST")).read()
    time.sleep(0.5)
    rss0, cpu0 = rss_mib(proc), cpu_s(proc)
    out = subprocess.run([bench, "writer", "--nsqd-tcp-address", TCP, "--topic", "d",
                          "--size", str(size), "--batch-size", "200", "--connections", "2",
                          "--defer", "1h", "--count", str(count), "--runfor", "30m"],
                         capture_output=True, text=True, check=True).stdout.strip()
    cpu = cpu_s(proc) - cpu0
    rate = float(re.search(r"([\d.]+)ops/s", out).group(1))
    time.sleep(1.0)
    rss1 = rss_mib(proc)
    waiting = deferred_count()
    per_m = 1e6 / count
    print(f"{case}: {count} DPUBs of {size} B: {rate/1e3:.0f}k msgs/s, nsqd CPU "
          f"{cpu * per_m:.2f} s per million; RSS {rss0:.0f} -> {rss1:.0f} MiB "
          f"(+{(rss1 - rss0) * per_m:.0f} MiB per million); deferred_count {waiting}; "
          f"data dir {du_mib(data):.0f} MiB")
    print(f"  writer: {out}")
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    exit_s = time.time() - t0
    print(f"  graceful exit: {exit_s:.1f} s (status {proc.returncode}); data dir "
          f"{du_mib(data):.0f} MiB")
    proc, up_s = start(data, FLAGS[case])
    t0 = time.time()
    while deferred_count() < waiting and time.time() - t0 < 600:
        time.sleep(0.1)
    print(f"  restart: /ping after {up_s:.2f} s, deferred_count {deferred_count()} after "
          f"{up_s + time.time() - t0:.2f} s; RSS {rss_mib(proc):.0f} MiB (peak "
          f"{rss_mib(proc, 'VmHWM'):.0f} MiB)")
    # A consumer makes the channel read its disk queue, every message of it deferred.
    reader = subprocess.Popen([bench, "reader", "--nsqd-tcp-address", TCP, "--topic", "d",
                               "--channel", "c", "--connections", "1", "--runfor", "30m"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(reader)
    t0, depth = time.time(), backend_depth()
    while depth > 0 and time.time() - t0 < 600:
        time.sleep(0.5)
        depth = backend_depth()
    read_s = time.time() - t0
    time.sleep(2.0)
    print(f"  consumer after the restart: the disk queue read through in {read_s:.1f} s "
          f"(backend_depth {depth}); deferred_count {deferred_count()}; RSS "
          f"{rss_mib(proc):.0f} MiB (peak {rss_mib(proc, 'VmHWM'):.0f} MiB); data dir "
          f"{du_mib(data):.0f} MiB")
    reader.kill()
    reader.wait()
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    print(f"  graceful exit with the consumer gone: {time.time() - t0:.1f} s (status "
          f"{proc.returncode})")


for case in cases:
    run_case(case)
