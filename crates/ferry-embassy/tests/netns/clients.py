"""Python ftplib and raw-socket scenarios against the embedded driver's host runner.

Usage: clients.py SCENARIO HOST USER PASSWORD [ARGS...]; exits non-zero (with a traceback) on any
failed check. Run inside the test's network namespace.
"""

import ftplib
import hashlib
import io
import socket
import struct
import sys
import threading
import time


def connect(host, user, password):
    f = ftplib.FTP()
    f.connect(host, 21, timeout=30)
    f.login(user, password)
    return f


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def reset(f):
    """Drops an ftplib session without QUIT: a TCP reset, as a crashed client would."""
    f.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # ftplib's reader holds the socket too: both must go for the reset to be sent.
    f.file.close()
    f.sock.close()


def basic(host, user, password):
    f = connect(host, user, password)
    expect(f.sendcmd("SYST").startswith("215"), "SYST")
    f.mkd("sub dir")
    f.cwd("sub dir")
    expect(f.pwd() == "/sub dir", "PWD after CWD")
    data = bytes(range(256)) * 40
    f.storbinary("STOR data.bin", io.BytesIO(data))
    expect(f.size("data.bin") == len(data), "SIZE")
    expect(f.sendcmd("MDTM data.bin").startswith("213 "), "MDTM")
    f.rename("data.bin", "renamed.bin")
    facts = dict(f.mlsd())
    expect(facts["renamed.bin"]["size"] == str(len(data)), "MLSD size")
    expect(f.nlst() == ["renamed.bin"], "NLST")
    lines = []
    f.retrlines("LIST", lines.append)
    expect(len(lines) == 1 and lines[0].endswith(" renamed.bin"), "LIST: %r" % lines)
    # REST + RETR: the tail from an offset.
    out = io.BytesIO()
    f.retrbinary("RETR renamed.bin", out.write, rest=1000)
    expect(out.getvalue() == data[1000:], "REST 1000 + RETR")
    # REST + STOR: resume an upload.
    f.storbinary("STOR part.bin", io.BytesIO(data[:3000]))
    f.storbinary("STOR part.bin", io.BytesIO(data[3000:]), rest=3000)
    out = io.BytesIO()
    f.retrbinary("RETR part.bin", out.write)
    expect(out.getvalue() == data, "REST + STOR resumes")
    # APPE.
    f.storbinary("APPE part.bin", io.BytesIO(b"tail"))
    expect(f.size("part.bin") == len(data) + 4, "APPE")
    # TYPE A: LF on disk, CRLF on the wire.
    f.storlines("STOR text.txt", io.BytesIO(b"one\ntwo\n"))
    out = io.BytesIO()
    f.voidcmd("TYPE I")
    f.retrbinary("RETR text.txt", out.write)
    expect(out.getvalue() == b"one\ntwo\n", "TYPE A upload stored with LF: %r" % out.getvalue())
    got = []
    f.retrlines("RETR text.txt", got.append)
    expect(got == ["one", "two"], "TYPE A download")
    # Active mode (PORT) from ftplib.
    f.set_pasv(False)
    out = io.BytesIO()
    f.retrbinary("RETR renamed.bin", out.write)
    expect(out.getvalue() == data, "PORT + RETR")
    f.set_pasv(True)
    # A bounce: PORT to another address is refused.
    try:
        f.sendcmd("PORT 10,77,0,99,200,10")
        raise AssertionError("PORT to a foreign address accepted")
    except ftplib.error_perm as e:
        expect(str(e).startswith("501"), "foreign PORT gets 501: %s" % e)
    for name in ["renamed.bin", "part.bin", "text.txt"]:
        f.delete(name)
    f.cwd("..")
    f.rmd("sub dir")
    try:
        f.retrbinary("RETR missing", lambda b: None)
        raise AssertionError("RETR of a missing file")
    except ftplib.error_perm as e:
        expect(str(e).startswith("550"), "missing file: %s" % e)
    expect(f.sendcmd("NOOP").startswith("200"), "NOOP")
    f.quit()
    print("basic OK")


def abort(host, user, password, name):
    f = connect(host, user, password)
    conn = f.transfercmd("RETR " + name)
    got = conn.recv(65536)
    expect(len(got) > 0, "data before ABOR")
    # STAT and NOOP are answered while the transfer runs.
    expect(f.sendcmd("NOOP").startswith("200"), "NOOP during a transfer")
    resp = f.abort()  # ABOR with Telnet IP/Synch, as ftplib sends it; reads one reply
    conn.close()
    if resp.startswith("426"):
        # 426 for the transfer, then 226 for the ABOR (RFC 959 4.1.3).
        expect(f.getresp().startswith("226"), "226 after 426")
    # The session goes on.
    expect(f.sendcmd("NOOP").startswith("200"), "NOOP after ABOR")
    expect(f.size(name) > 0, "SIZE after ABOR")
    f.quit()
    print("abort OK")


def garbage(host, user, password):
    s = socket.create_connection((host, 21), timeout=30)
    r = s.makefile("rb")
    expect(r.readline().startswith(b"220"), "greeting")
    s.sendall(b"X" * 5000 + b"\r\n")
    line = r.readline()
    expect(line.startswith(b"500"), "overlong line: %r" % line)
    s.sendall(b"\xff\xfe\x00\x01garbage \x80\x81\r\n")
    line = r.readline()
    expect(line[:1] == b"5", "garbage: %r" % line)
    s.sendall(b"NOOP\r\n")
    line = r.readline()
    expect(line.startswith(b"200"), "NOOP after garbage: %r" % line)
    s.sendall(b"USER " + user.encode() + b"\r\nPASS " + password.encode() + b"\r\n")
    expect(r.readline().startswith(b"331"), "USER")
    expect(r.readline().startswith(b"230"), "PASS")
    s.sendall(b"QUIT\r\n")
    expect(r.readline().startswith(b"221"), "QUIT")
    s.close()
    print("garbage OK")


def slow_retr(f, name, started, release, results, i):
    conn = f.transfercmd("RETR " + name)
    h = hashlib.sha256()
    first = conn.recv(1024)
    h.update(first)
    started.release()
    release.wait()
    while True:
        b = conn.recv(65536)
        if not b:
            break
        h.update(b)
    conn.close()
    f.voidresp()
    results[i] = h.hexdigest()


def pool(host, user, password, sessions, name, digest):
    sessions = int(sessions)
    clients = [connect(host, user, password) for _ in range(sessions)]
    started = threading.Semaphore(0)
    release = threading.Event()
    results = [None] * sessions
    threads = [
        threading.Thread(target=slow_retr, args=(f, name, started, release, results, i))
        for i, f in enumerate(clients)
    ]
    for t in threads:
        t.start()
    for _ in threads:
        expect(started.acquire(timeout=30), "every session is transferring")
    # One more: 421 and closed, never a hang.
    s = socket.create_connection((host, 21), timeout=30)
    r = s.makefile("rb")
    line = r.readline()
    expect(line.startswith(b"421"), "session beyond the pool: %r" % line)
    expect(r.readline() == b"", "closed after 421")
    s.close()
    release.set()
    for t in threads:
        t.join(60)
    expect(all(d == digest for d in results), "every concurrent RETR byte-exact: %r" % results)
    # A dropped client frees its slot: reset one control connection without QUIT.
    victim = clients.pop()
    reset(victim)
    deadline = time.monotonic() + 20
    while True:
        try:
            s = socket.create_connection((host, 21), timeout=30)
            line = s.makefile("rb").readline()
            s.close()
        except ConnectionRefusedError:
            # The refusal socket is closing its previous connection.
            line = b""
        if line.startswith(b"220"):
            break
        expect(time.monotonic() < deadline, "a slot is free again after a client dropped")
        time.sleep(0.2)
    for f in clients:
        f.quit()
    print("pool OK")


def drop_upload(host, user, password, name, size):
    f = connect(host, user, password)
    conn = f.transfercmd("STOR " + name)
    chunk = b"x" * 65536
    sent = 0
    while sent < int(size) // 2:
        conn.sendall(chunk)
        sent += len(chunk)
    # Reset the data connection and drop the control connection, mid-upload.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    reset(f)
    # The server notices and cleans up; a new session must not see a partial file.
    deadline = time.monotonic() + 20
    while True:
        try:
            g = connect(host, user, password)
            names = g.nlst()
            g.quit()
            if name not in names:
                break
        except (ftplib.Error, OSError):
            pass
        expect(time.monotonic() < deadline, "a dropped upload leaves no file")
        time.sleep(0.2)
    print("drop_upload OK")


def store_expect(host, user, password, name, size, code):
    f = connect(host, user, password)
    try:
        conn = f.transfercmd("STOR " + name)
    except ftplib.Error as e:
        reply = str(e)
    else:
        # The server may stop reading and reset the data connection when it fails mid-upload.
        try:
            conn.sendall(b"z" * int(size))
        except OSError:
            pass
        conn.close()
        try:
            reply = f.getresp()
        except ftplib.Error as e:
            reply = str(e)
    expect(reply.startswith(code), "STOR %s: expected %s, got %s" % (name, code, reply))
    expect(f.sendcmd("NOOP").startswith("200"), "session goes on")
    f.quit()
    print("store_expect OK")


def command_expect(host, user, password, command, code):
    f = connect(host, user, password)
    try:
        reply = f.sendcmd(command)
    except ftplib.Error as e:
        reply = str(e)
    expect(reply.startswith(code), "%s: expected %s, got %s" % (command, code, reply))
    f.quit()
    print("command_expect OK")


if __name__ == "__main__":
    scenario, args = sys.argv[1], sys.argv[2:]
    globals()[scenario](*args)
