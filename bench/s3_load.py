#!/usr/bin/env python3
"""Load for bench/s3-memory.sh: N FTP sessions at once against Ferry, all logged in as bench:bench.

  s3_load.py HOST:PORT slow-readers N NAME   N RETRs of NAME whose data connections read nothing;
                                             returns once all N have their 150 and held them HOLD s
  s3_load.py HOST:PORT uploads N SIZE        N concurrent STORs of SIZE bytes each; checks 226
"""
import os
import socket
import sys
import threading
import time

HOLD = float(os.environ.get("HOLD", "10"))


def reply(f):
    line = f.readline()
    code = line[:3]
    if line[3:4] == "-":
        while not (line[:3] == code and line[3:4] == " "):
            line = f.readline()
    return line


def session(addr):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=600)
    f = s.makefile("r", encoding="latin-1", newline="\r\n")
    reply(f)
    for cmd in ("USER bench", "PASS bench", "TYPE I"):
        s.sendall((cmd + "\r\n").encode())
        reply(f)
    return s, f


def pasv(s, f):
    s.sendall(b"PASV\r\n")
    r = reply(f)
    nums = r[r.index("(") + 1 : r.index(")")].split(",")
    host = ".".join(nums[:4])
    port = int(nums[4]) * 256 + int(nums[5])
    # A small receive buffer, so that the unread data stays in the server.
    d = socket.socket()
    d.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    d.connect((host, port))
    return d


def main():
    addr, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    held, errors = [], []
    lock = threading.Lock()

    def slow(name):
        s, f = session(addr)
        d = pasv(s, f)
        s.sendall(f"RETR {name}\r\n".encode())
        r = reply(f)
        with lock:
            (held if r.startswith("150") else errors).append((s, d, r))

    def upload(i, size):
        s, f = session(addr)
        d = pasv(s, f)
        s.sendall(f"STOR up{i}.bin\r\n".encode())
        r = reply(f)
        if not r.startswith("150"):
            errors.append(r)
            return
        block = os.urandom(1 << 20)
        left = size
        while left:
            k = min(left, len(block))
            d.sendall(block[:k])
            left -= k
        d.close()
        r = reply(f)
        if not r.startswith("226"):
            errors.append(r)
        s.close()

    if mode == "slow-readers":
        ts = [threading.Thread(target=slow, args=(sys.argv[4],)) for _ in range(n)]
    else:
        size = int(sys.argv[4])
        ts = [threading.Thread(target=upload, args=(i, size)) for i in range(n)]
    t0 = time.time()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if mode == "slow-readers":
        time.sleep(HOLD)
    print(f"{mode}: {n} sessions, {len(errors)} errors, {time.time() - t0:.1f} s", flush=True)
    for e in errors[:5]:
        print("  ", e[-1] if isinstance(e, tuple) else e.strip())


main()
