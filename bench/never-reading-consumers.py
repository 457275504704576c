#!/usr/bin/env python3
"""1,000 consumers with RDY 2500 that never read their sockets: nsqd's RSS while they
hold messages, nsqd's CPU while they sit, a good client's writer and reader rates before
and while they are there, and that every message comes back once they leave (after the
60 s msg-timeout). Loopback only; about 2 minutes.

usage: python3 bench/never-reading-consumers.py target/release/nsqd target/release/nsq-bench"""
import json, os, re, socket, subprocess, sys, tempfile, time, resource, urllib.request

nsqd, bench = sys.argv[1], sys.argv[2]
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (min(20000, hard), hard))
data = tempfile.mkdtemp()
TCP, HTTP = "127.0.0.1:24350", "127.0.0.1:24351"
proc = subprocess.Popen([nsqd, "--data-path", data, "--tcp-address", TCP, "--http-address", HTTP,
                         "--msg-timeout", "60s", "--log-level", "warn"])
time.sleep(1.0)

def rss_mib():
    for line in open(f"/proc/{proc.pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

def run(kind, topic, runfor):
    out = subprocess.run([bench, kind, "--nsqd-tcp-address", TCP, "--topic", topic,
                          "--runfor", runfor], capture_output=True, text=True).stdout
    m = re.search(r"([\d.]+) ops/s", out) or re.search(r"([\d.]+)\s*msgs?/s", out)
    return out.strip().splitlines()[-1]

def stats(topic):
    s = json.load(urllib.request.urlopen(f"http://{HTTP}/stats?format=json&topic={topic}"))
    t = [t for t in s["topics"] if t["topic_name"] == topic][0]
    return t["message_count"], [(c["depth"], c["in_flight_count"]) for c in t["channels"]]

def cpu_s():
    f = open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
print("rss at start: %.1f MiB" % rss_mib())
c0 = cpu_s()
for i in range(3):
    print("unloaded writer:", run("writer", "u%d" % i, "3s"))
print("unloaded reader:", run("reader", "u0", "3s"))
print("nsqd CPU during unloaded good client: %.2f s" % (cpu_s() - c0))
hogs = []
for _ in range(1000):
    s = socket.create_connection(("127.0.0.1", 24350))
    s.sendall(b"  V2SUB hogged ch\nRDY 2500\n")
    hogs.append(s)
print("hogs connected: %.1f MiB" % rss_mib())
print("publish to hogs:", run("writer", "hogged", "2s"))
def cpu_s():
    f = open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
for _ in range(5):
    c0 = cpu_s(); time.sleep(1)
    print("nsqd CPU in a second while hogs sit: %.2f s" % (cpu_s() - c0))
print("hogged stats (messages, [(depth, in_flight)]):", stats("hogged"))
print("rss with hogs holding messages: %.1f MiB" % rss_mib())
c0 = cpu_s()
for i in range(3):
    print("loaded writer:", run("writer", "l%d" % i, "3s"))
print("loaded reader:", run("reader", "l0", "3s"))
print("nsqd CPU during loaded good client: %.2f s" % (cpu_s() - c0))
print("rss after good client: %.1f MiB" % rss_mib())
for s in hogs:
    s.close()
time.sleep(62)  # past --msg-timeout: what the hogs held is back in the queue
print("after hogs left:", stats("hogged"))
print("drain:", run("reader", "hogged", "5s"))
print("after drain:", stats("hogged"), "rss %.1f MiB" % rss_mib())
proc.terminate(); proc.wait()
