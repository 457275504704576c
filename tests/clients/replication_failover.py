#!/usr/bin/env python3
"""Replicated topics with clients we did not write: a pynsq and an nsqjs consumer, going
through nsqlookupd, receive every acknowledged message after the nsqd that took the
publishes is killed (-9) and its data directory deleted (issue 16's contract). Not run
by `cargo test` (it needs PyPI and npm); run by hand:

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install pynsq
    (cd /tmp/js && npm install nsqjs)
    cargo build --release --bin nsqd --bin nsqlookupd
    python3 tests/clients/replication_failover.py target/release /tmp/venv/bin/python \
        /tmp/js/node_modules

Three nsqds with --replication-factor=2 name each other with --replica-peer; one
nsqlookupd. Topic `orders` has channels `py` and `js` on every nsqd before anything is
published. HTTP /pub to nsqd-1 (each 200 OK recorded as acknowledged); after KILL_AFTER
of them nsqd-1 is killed and its data directory deleted, and publishing goes on to
nsqd-2. Passes when both consumers got every acknowledged body (duplicates allowed)
within the deadline; prints the counts either way and exits 1 on a loss."""
import os, shutil, signal, socket, subprocess, sys, tempfile, threading, time, urllib.request

bin_dir, python, node_modules = sys.argv[1:4]
HERE = os.path.dirname(os.path.abspath(__file__))
TOTAL, KILL_AFTER, DEADLINE_S, DELAY_MS = 1500, 600, 120, "4"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(address, path, body=None):
    request = urllib.request.Request(f"http://{address}{path}", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status


def count_lines(path):
    return len(open(path).read().split()) if os.path.exists(path) else 0


def wait_ping(address):
    for _ in range(500):
        try:
            urllib.request.urlopen(f"http://{address}/ping", timeout=1).read()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"{address} never answered /ping")


def main():
    work = tempfile.mkdtemp(prefix="nsq-clients-")
    procs = []
    lookupd_tcp, lookupd_http = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    procs.append(subprocess.Popen([f"{bin_dir}/nsqlookupd", "--tcp-address", lookupd_tcp,
                                   "--http-address", lookupd_http, "--log-level", "warn"]))
    wait_ping(lookupd_http)
    nodes = [(f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}") for _ in range(3)]
    nsqds = []
    for i, (tcp, web) in enumerate(nodes):
        data = os.path.join(work, f"data{i + 1}")
        os.makedirs(data)
        peers = [f"--replica-peer={other}" for other, _ in nodes if other != tcp]
        nsqds.append(subprocess.Popen(
            [f"{bin_dir}/nsqd", f"--node-id={i + 1}", "--data-path", data, "--tcp-address", tcp,
             "--http-address", web, "--broadcast-address=127.0.0.1", "--log-level", "warn",
             f"--lookupd-tcp-address={lookupd_tcp}", "--replication-factor=2",
             "--replica-failover-timeout=3s"] + peers))
    procs += nsqds
    try:
        for _, web in nodes:
            wait_ping(web)
            http(web, "/topic/create?topic=orders")
            for channel in ("py", "js"):
                http(web, f"/channel/create?topic=orders&channel={channel}")
        outs = {name: os.path.join(work, f"{name}.out") for name in ("py", "js")}
        env = dict(os.environ, NODE_PATH=node_modules)
        procs.append(subprocess.Popen([python, os.path.join(HERE, "pynsq_consumer.py"), "orders",
                                       "py", lookupd_http, outs["py"], DELAY_MS], stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(["node", os.path.join(HERE, "nsqjs_consumer.js"), "orders",
                                       "js", lookupd_http, outs["js"], DELAY_MS], env=env,
                                      stderr=subprocess.DEVNULL))
        time.sleep(3)  # the consumers find nsqd-1 through lookupd
        acked, failed = set(), 0
        target = nodes[0][1]
        for n in range(TOTAL):
            if n == KILL_AFTER:
                nsqds[0].send_signal(signal.SIGKILL)
                nsqds[0].wait()
                shutil.rmtree(os.path.join(work, "data1"))
                done = {name: count_lines(path) for name, path in outs.items()}
                print(f"killed nsqd-1 and deleted its data after {len(acked)} acknowledged; "
                      f"consumed by then: {done}")
                target = nodes[1][1]
            body = f"m-{n}"
            try:
                if http(target, "/pub?topic=orders", body.encode()) == 200:
                    acked.add(body)
            except OSError:
                failed += 1
            time.sleep(0.002)
        print(f"published {TOTAL}: {len(acked)} acknowledged, {failed} failed")
        deadline = time.time() + DEADLINE_S
        missing = {}
        while time.time() < deadline:
            missing = {}
            for name, path in outs.items():
                got = open(path).read().split() if os.path.exists(path) else []
                missing[name] = acked - set(got)
            if not any(missing.values()):
                break
            time.sleep(1)
        for name, path in outs.items():
            got = open(path).read().split() if os.path.exists(path) else []
            print(f"{name}: {len(got)} received, {len(set(got))} distinct, "
                  f"{len(missing[name])} acknowledged missing")
        if any(missing.values()):
            raise SystemExit("FAIL: acknowledged messages never arrived")
        print("PASS: every acknowledged message reached both consumers")
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
