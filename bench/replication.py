#!/usr/bin/env python3
"""Replicated topics: MPUB throughput and publish latency, unreplicated against
replicated, on this machine (issue 16 asks for at least 50% of unreplicated throughput
with batch 200).

Cases (each on fresh temporary data dirs, loopback only):
- unreplicated: one nsqd with its defaults.
- replicated: two nsqds with --replication-factor=2 naming each other; the publisher
  talks to the first, which answers each MPUB once the second holds it.
- Each again crash-safe (--mem-queue-size=0 --sync-every=1): every OK waits for the
  fsync of the owner and, when replicated, of the replica's standby store.

Per case:
- throughput: `nsq-bench writer` (200-byte messages, batch 200, 2 connections, RUNFOR),
  with the CPU seconds all the case's nsqds used per million messages;
- publish latency: ROUNDS sequential PUBs of 200 bytes on one connection, each timed
  from sending to its OK (p50, p99, max), by this script.

usage: python3 bench/replication.py NSQD NSQ_BENCH [RUNFOR] [ROUNDS] [cases]
       cases: comma-separated of unreplicated,replicated,unreplicated-safe,replicated-safe"""
import functools, os, re, socket, struct, subprocess, sys, tempfile, time, urllib.request

print = functools.partial(print, flush=True)

nsqd, bench = sys.argv[1], sys.argv[2]
runfor = sys.argv[3] if len(sys.argv) > 3 else "10s"
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 2000
cases = (sys.argv[5] if len(sys.argv) > 5
         else "unreplicated,replicated,unreplicated-safe,replicated-safe").split(",")
NODES = [("127.0.0.1:24650", "127.0.0.1:24651"), ("127.0.0.1:24660", "127.0.0.1:24661")]
SAFE = ["--mem-queue-size=0", "--sync-every=1"]


def start(i, data, flags):
    tcp, http = NODES[i]
    proc = subprocess.Popen([nsqd, "--data-path", data, "--tcp-address", tcp,
                             "--http-address", http, "--log-level", "warn",
                             f"--node-id={i + 1}"] + flags)
    while True:
        try:
            urllib.request.urlopen(f"http://{http}/ping").read()
            return proc
        except OSError:
            time.sleep(0.02)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def publish_latencies(tcp):
    host, port = tcp.split(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(b"  V2")
    body = b"x" * 200
    command = b"PUB latency\n" + struct.pack(">I", len(body)) + body
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        sock.sendall(command)
        answer = b""
        while len(answer) < 4 or len(answer) < 4 + struct.unpack(">I", answer[:4])[0]:
            answer += sock.recv(64)
        times.append(time.perf_counter() - t0)
        if b"OK" not in answer:
            raise SystemExit(f"publish failed: {answer!r}")
    sock.close()
    times.sort()
    pick = lambda q: times[min(len(times) - 1, int(q * len(times)))] * 1e6
    return pick(0.5), pick(0.99), times[-1] * 1e6


def run(case):
    replicated = case.startswith("replicated")
    flags = SAFE if case.endswith("-safe") else []
    dirs = [tempfile.mkdtemp(prefix="nsq-rep-bench-") for _ in NODES]
    procs = []
    for i in range(2 if replicated else 1):
        extra = []
        if replicated:
            peer = NODES[1 - i][0]
            extra = ["--replication-factor=2", f"--replica-peer={peer}"]
        procs.append(start(i, dirs[i], flags + extra))
    time.sleep(0.5 if replicated else 0.1)
    try:
        before = sum(cpu_seconds(p.pid) for p in procs)
        out = subprocess.run([bench, "writer", "--runfor", runfor, "--nsqd-tcp-address",
                              NODES[0][0], "--connections", "2", "--batch-size", "200",
                              "--size", "200"], capture_output=True, text=True, check=True)
        cpu = sum(cpu_seconds(p.pid) for p in procs) - before
        line = out.stdout.strip().splitlines()[-1]
        rate = float(re.search(r"([\d.]+)ops/s", line).group(1))
        seconds = float(re.search(r"duration: ([\d.]+)s", line).group(1))
        per_million = cpu / (rate * seconds / 1e6)
        p50, p99, worst = publish_latencies(NODES[0][0])
        print(f"{case:18} {rate / 1e3:8.0f}k msgs/s  nsqd CPU {per_million:5.2f} s/M  "
              f"PUB OK latency p50 {p50:7.0f} us  p99 {p99:7.0f} us  max {worst:7.0f} us")
        return rate
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        for d in dirs:
            subprocess.run(["rm", "-rf", d])


if __name__ == "__main__":
    print(f"nsqd {nsqd}; writer {runfor}, 200 B, batch 200, 2 connections; "
          f"{rounds} sequential PUBs for latency")
    rates = {case: run(case) for case in cases}
    for base in ("unreplicated", "unreplicated-safe"):
        other = base.replace("unreplicated", "replicated")
        if base in rates and other in rates:
            print(f"{other} / {base}: {100 * rates[other] / rates[base]:.0f}%")
