#!/usr/bin/env python3
"""Writes the seed corpora (fuzz/corpus/<target>/) from the golden transcripts of Go NSQ
v1.3.0 (GOLDEN, default ../shared/golden beside the repository) and a few hand-written
inputs. Run from fuzz/: `python3 seeds/make_seeds.py`; then `cargo fuzz cmin <target>`."""
import ast, hashlib, os, re, sys

HERE = os.path.dirname(os.path.abspath(__file__))
FUZZ = os.path.dirname(HERE)
GOLDEN = os.environ.get("GOLDEN", os.path.join(FUZZ, "..", "..", "shared", "golden"))
PLACEHOLDERS = {b"<HOST>": b"vm", b"<HTTP_PORT>": b"4151", b"<TCP_PORT>": b"4150",
                b"<TS>": b"\x18\x00\x00\x00\x00\x00\x00\x00"}


def seed(target, data):
    d = os.path.join(FUZZ, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def literal(expr):
    """The bytes of `b'..' + b'..'` (a trailing `# comment` dropped)."""
    parts = []
    for m in re.finditer(r"b'(?:[^'\\]|\\.)*'|b\"(?:[^\"\\]|\\.)*\"", expr):
        parts.append(ast.literal_eval(m.group(0)))
    data = b"".join(parts)
    for k, v in PLACEHOLDERS.items():
        data = data.replace(k, v)
    return data


def sections(path, marker):
    """The client bytes of each transcript section (split on `---` rules and magics)."""
    out, cur = [], []
    for line in open(path, encoding="utf-8", errors="replace"):
        s = line.strip()
        if s.startswith("C> "):
            data = literal(s[3:])
            if data == marker:
                if cur:
                    out.append(b"".join(cur))
                cur = []
                continue
            cur.append(data)
        elif s.startswith("---") or s.startswith("## "):
            if cur:
                out.append(b"".join(cur))
            cur = []
    if cur:
        out.append(b"".join(cur))
    return out


def server_frames(path):
    for line in open(path, encoding="utf-8", errors="replace"):
        s = line.strip()
        if s.startswith("raw b"):
            yield literal(s[4:])


def main():
    g = lambda name: os.path.join(GOLDEN, name)
    # V2 commands: [state|flags][max msg size/16][extra body/32] then the client's bytes.
    for data in sections(g("tcp-v2.txt"), b"  V2"):
        for state in range(4):
            seed("v2_command", bytes([state, 0xff, 0xff]) + data)
    # Messages and frames: [max frame size u16] then the server's bytes.
    for raw in server_frames(g("tcp-v2.txt")):
        seed("message", b"\x10\x00" + raw)
        if len(raw) > 8 and raw[7] == 2:
            seed("message", b"\x10\x00" + raw[8:])
    for data in sections(g("lookupd.txt"), b"  V1"):
        seed("lookupd_v1", data)
    text = open(g("data-dir.txt"), encoding="utf-8").read()
    for m in re.finditer(r"nsqd\.dat \(\d+ bytes\), verbatim:\n\s*(b'.*')", text):
        seed("nsqd_dat", literal(m.group(1)))
    metas = [literal(m.group(1)) for m in
             re.finditer(r"meta\.dat \(\d+ bytes\), verbatim:\n\s*(b'.*')", text)]
    record = lambda body: len(body).to_bytes(4, "big") + body
    msg = lambda body: b"\x18" + b"\0" * 7 + b"\x00\x01" + b"0123456789abcdef" + body
    data0 = record(msg(b"one")) + record(msg(b"two")) + record(msg(b"three"))
    for meta in metas + [b"3\n0,0\n0,%d\n" % len(data0), b"1\n0,0\n1,4\n"]:
        for sel in (0, 5, 255):
            seed("diskqueue", bytes([sel]) + meta.replace(b"\0", b"") + b"\0" + data0.replace(b"\0", b"\x01")
                 + b"\0" + record(b"x\x01y"))
    # HTTP: [selector] query NUL body, from the /pub, /mpub and /config requests.
    http = open(g("http-nsqd.txt"), encoding="utf-8", errors="replace").read()
    for m in re.finditer(r"^> (POST|PUT|GET) (/(?:pub|mpub|config)[^ ]*) HTTP/1.1(?:\s+body \(\d+ bytes\): (b'.*'))?",
                         http, re.M):
        method, target, body = m.group(1), m.group(2), literal(m.group(3) or "b''")
        path, _, query = target.partition("?")
        if path == "/pub":
            sel, q = 0, query
        elif path == "/mpub":
            sel, q = (2, query.replace("binary=true", "")) if "binary=true" in query else (1, query)
        else:
            sel, q = (3 if method == "PUT" else 4), path[len("/config/"):]
        seed("http_api", bytes([sel]) + q.encode() + b"\0" + body)
    seed("http_api", b"\x05\0[\"127.0.0.1:1\"]")
    # Compression: garbage mode (even selector) and round trip (odd).
    for sel in (0, 1, 64, 65):
        seed("snappy_reader", bytes([sel]) + b"\xff\x06\x00\x00sNaPpY\x01\x08\x00\x00\x00\x00\x00\x00abcd")
        seed("snappy_reader", bytes([sel]) + b"hello world\xffagain hello world")
        seed("deflate_reader", bytes([sel]) + b"hello world\xffagain hello world")
        seed("deflate_reader", bytes([sel]) + bytes.fromhex("cac84cc807000000ffff"))
    # Config: flags one per line, NUL, TOML.
    for args, toml in [
        ("--mem-queue-size=1000\n-msg-timeout=90s\n--snappy=false", ""),
        ("--max-deflate-level=6\n--e2e-processing-latency-percentile=0.99\n-e2e-processing-latency-percentile=0.5", ""),
        ("--tls-required=tcp-https\n--log-level=debug", ""),
        ("--statsd-interval=1m30.5s", 'mem_queue_size = 10\nmsg_timeout = "60s"\nnsqlookupd_tcp_addresses = ["127.0.0.1:4160"]\nlog_level = "warn"\n'),
        ("--version", ""),
        ("", 'e2e_processing_latency_percentiles = [1.0, 0.99]\nmax_req_timeout = 3600000000000\nsnappy = true\n'),
        ("-1.5h\n300ms\n2h45m\n-9223372036854775808ns\n1µs\n2006-01-02 15:04:05", ""),
    ]:
        seed("config", args.encode() + (b"\0" + toml.encode() if toml else b""))
    # HTTP front: 8 bytes choosing the read cuts, then what a client sends.
    cuts = bytes([1, 7, 3, 40, 2, 255, 5, 11])
    for stream in [
        b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /pub?topic=t HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /stats HTTP/1.1\r\n\r\n",
        b"POST /mpub?topic=t HTTP/1.1\nTransfer-Encoding: chunked\n\n3;x=1\r\nabc\r\n0\r\nT: v\r\n\r\nGET / HTTP/1.0\r\n\r\n",
        b"  V2IDENTIFY\n\x00\x00\x00\x02{}",
        b"GET / HTTP/11\r\n\r\n",
        b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nraw bytes",
        b"POST /pub HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\nabc",
        b"GET http://h/stats?topic=t HTTP/1.1\r\n\r\nGET /ping HTTP/1.1\r\n\r\nnot http\n",
    ]:
        seed("http_front", cuts + stream)
    scenarios = os.path.join(FUZZ, "..", "scenarios")
    for root, _, files in os.walk(scenarios):
        for name in files:
            if name.endswith(".toml"):
                seed("scenario", open(os.path.join(root, name), "rb").read())


main()
