#!/usr/bin/env python3
"""Drives Python's ftplib against a running Ferry server, one scenario per run.

Usage: ftplib_suite.py SCENARIO PORT USER PASSWORD WORKDIR

The Rust side (crates/ferry/tests/interop.rs) prepares files in the server's root and in WORKDIR (the
client's side), runs one scenario and then checks the files on disk byte for byte. Each scenario also
checks what ftplib sees; any failed check raises, so the exit status is non-zero. The last line printed
on success is "PASS <scenario>".
"""

import ftplib
import os
import socket
import sys
from io import BytesIO

HOST = "127.0.0.1"
TIMEOUT = 30


def expect(cond, what):
    """Raises AssertionError with `what` unless `cond` holds."""
    if not cond:
        raise AssertionError(what)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def expect_perm_error(fn, *args):
    """Calls fn(*args), which must fail with a 5xx reply; returns that reply."""
    try:
        resp = fn(*args)
    except ftplib.error_perm as e:
        return str(e)
    raise AssertionError(f"{fn.__name__}{args} succeeded ({resp!r}), expected a 5xx reply")


def connect(port, user, password):
    ftp = ftplib.FTP()
    ftp.connect(HOST, port, timeout=TIMEOUT)
    welcome = ftp.getwelcome()
    expect(welcome.startswith("220"), f"greeting {welcome!r}")
    resp = ftp.login(user, password)
    expect(resp.startswith("230"), f"login reply {resp!r}")
    return ftp


def retr_bytes(ftp, name, rest=None):
    chunks = []
    resp = ftp.retrbinary(f"RETR {name}", chunks.append, blocksize=65536, rest=rest)
    expect(resp.startswith("226"), f"RETR {name}: final reply {resp!r}")
    return b"".join(chunks)


def scenario_binary(ftp, work):
    """STOR and RETR of several MiB, byte-exact; RETR with REST; SIZE."""
    up = read_file(os.path.join(work, "up.bin"))
    with open(os.path.join(work, "up.bin"), "rb") as f:
        resp = ftp.storbinary("STOR up.bin", f, blocksize=65536)
    expect(resp.startswith("226"), f"STOR reply {resp!r}")
    expect(ftp.size("up.bin") == len(up), "SIZE up.bin after upload")
    expect(retr_bytes(ftp, "up.bin") == up, "RETR of the uploaded file differs")

    down = retr_bytes(ftp, "down.bin")
    with open(os.path.join(work, "down.bin"), "wb") as f:
        f.write(down)
    expect(ftp.size("down.bin") == len(down), "SIZE down.bin")

    # REST + RETR: the tail from the offset.
    offset = 123457
    expect(retr_bytes(ftp, "down.bin", rest=offset) == down[offset:], "RETR with REST")

    # Overwrite with a smaller file: the old tail must be gone.
    small = b"tiny\x00\xff\r\n"
    ftp.storbinary("STOR up.bin", BytesIO(small))
    expect(retr_bytes(ftp, "up.bin") == small, "overwrite with a smaller file")
    ftp.storbinary("STOR up.bin", BytesIO(up))

    # APPE adds at the end.
    ftp.storbinary("STOR appended.bin", BytesIO(b"head-"))
    ftp.storbinary("APPE appended.bin", BytesIO(b"tail"))
    expect(retr_bytes(ftp, "appended.bin") == b"head-tail", "APPE")


def scenario_ascii(ftp, work):
    """TYPE A: CRLF on the wire, the server's native LF on disk, both directions."""
    with open(os.path.join(work, "lines.txt"), "rb") as f:
        resp = ftp.storlines("STOR lines.txt", f)
    expect(resp.startswith("226"), f"storlines reply {resp!r}")

    lines = []
    resp = ftp.retrlines("RETR served.txt", lines.append)
    expect(resp.startswith("226"), f"retrlines reply {resp!r}")
    expect(lines == ["alpha", "beta gamma", "", "delta"], f"retrlines gave {lines!r}")

    # The raw bytes of a TYPE A transfer: every LF goes out as CRLF.
    ftp.voidcmd("TYPE A")
    with ftp.transfercmd("RETR served.txt") as conn:
        raw = b""
        while True:
            data = conn.recv(65536)
            if not data:
                break
            raw += data
    resp = ftp.voidresp()
    expect(resp.startswith("226"), f"TYPE A RETR reply {resp!r}")
    expect(raw == b"alpha\r\nbeta gamma\r\n\r\ndelta\r\n", f"TYPE A bytes on the wire: {raw!r}")

    # TYPE I of the same file: the bytes as stored.
    expect(retr_bytes(ftp, "served.txt") == b"alpha\nbeta gamma\n\ndelta\n", "TYPE I RETR of a text file")
    # And what storlines stored, read back as binary.
    expect(
        retr_bytes(ftp, "lines.txt") == b"first line\nsecond line\n\nlast line\n",
        "storlines result read back in TYPE I",
    )


def scenario_listing(ftp, work):
    """MLSD, NLST, LIST, CWD/PWD, SIZE, MDTM and MLST on a prepared folder."""
    expected = {
        "plain.txt": ("file", 5),
        "with space.txt": ("file", 11),
        "ünïcødé ✓.txt": ("file", 8),
        "-dash.txt": ("file", 4),
        "sub dir": ("dir", None),
        "empty": ("dir", None),
    }
    entries = {}
    for name, facts in ftp.mlsd(facts=["type", "size", "modify", "perm"]):
        if facts.get("type") in ("cdir", "pdir"):
            continue
        entries[name] = facts
    expect(set(entries) == set(expected), f"MLSD names {sorted(entries)!r}")
    for name, (kind, size) in expected.items():
        facts = entries[name]
        expect(facts.get("type") == kind, f"MLSD type of {name!r}: {facts!r}")
        if size is not None:
            expect(facts.get("size") == str(size), f"MLSD size of {name!r}: {facts!r}")
        expect("modify" in facts, f"MLSD modify of {name!r}: {facts!r}")
    expect(entries["plain.txt"]["modify"][:14] == "20210304050607", f"MLSD modify {entries['plain.txt']!r}")

    names = ftp.nlst()
    expect(sorted(names) == sorted(expected), f"NLST gave {names!r}")
    inner = [n.rsplit("/", 1)[-1] for n in ftp.nlst("sub dir")]
    expect(inner == ["inner.txt"], f"NLST 'sub dir' gave {inner!r}")

    lines = []
    ftp.dir(lines.append)
    for name, (kind, size) in expected.items():
        matching = [line for line in lines if line.endswith(" " + name)]
        expect(len(matching) == 1, f"LIST line for {name!r} in {lines!r}")
        fields = matching[0].split()
        expect(fields[0][0] == ("d" if kind == "dir" else "-"), f"LIST type of {name!r}: {matching[0]!r}")
        if size is not None:
            expect(fields[4] == str(size), f"LIST size of {name!r}: {matching[0]!r}")

    ftp.cwd("sub dir")
    expect(ftp.pwd() == "/sub dir", f"PWD after CWD: {ftp.pwd()!r}")
    expect(ftp.size("inner.txt") == 3, "SIZE in a subfolder")
    ftp.cwd("..")
    expect(ftp.pwd() == "/", f"PWD after CWD ..: {ftp.pwd()!r}")
    expect_perm_error(ftp.cwd, "plain.txt")
    expect_perm_error(ftp.cwd, "missing")

    expect(ftp.size("ünïcødé ✓.txt") == 8, "SIZE of a UTF-8 name")
    expect(ftp.size("-dash.txt") == 4, "SIZE of a name with a leading dash")
    resp = ftp.sendcmd("MDTM plain.txt")
    expect(resp == "213 20210304050607", f"MDTM reply {resp!r}")
    expect_perm_error(ftp.sendcmd, "MDTM missing.txt")
    resp = ftp.sendcmd("MLST plain.txt")
    expect(resp.startswith("250") and "size=5;" in resp and "type=file;" in resp, f"MLST reply {resp!r}")


def scenario_ops(ftp, work):
    """RNFR/RNTO, DELE, MKD/RMD (with the quoted 257 path), SIZE, and their error replies."""
    expect(ftp.rename("plain.txt", "renamed.txt").startswith("250"), "rename")
    ftp.rename("with space.txt", "sub dir/moved here.txt")
    expect(ftp.delete("-dash.txt").startswith("250"), "delete")
    expect(ftp.mkd("new dir") == "/new dir", "MKD reply path")
    expect(ftp.mkd('quo"te') == '/quo"te', "MKD reply path with a quote")
    ftp.cwd("new dir")
    expect(ftp.mkd("child") == "/new dir/child", "MKD relative to the working directory")
    ftp.cwd("/")
    ftp.rmd("empty")
    ftp.mkd("tmp")
    ftp.rmd("tmp")
    expect(ftp.size("renamed.txt") == 5, "SIZE after rename")

    reply = expect_perm_error(ftp.delete, "missing.txt")
    expect(reply.startswith("550"), f"DELE of a missing file: {reply!r}")
    reply = expect_perm_error(ftp.rmd, "sub dir")
    expect(reply.startswith("550"), f"RMD of a non-empty folder: {reply!r}")
    reply = expect_perm_error(ftp.rename, "missing.txt", "x.txt")
    expect(reply.startswith("550"), f"RNFR of a missing file: {reply!r}")
    reply = expect_perm_error(ftp.size, "sub dir")
    expect(reply.startswith("550"), f"SIZE of a folder: {reply!r}")
    # The session goes on after errors.
    expect(ftp.pwd() == "/", "PWD after errors")


def scenario_active(ftp, work):
    """Active mode: PORT (ftplib's set_pasv(False)) and a hand-made EPRT."""
    ftp.set_pasv(False)
    up = read_file(os.path.join(work, "up.bin"))
    with open(os.path.join(work, "up.bin"), "rb") as f:
        resp = ftp.storbinary("STOR up.bin", f)
    expect(resp.startswith("226"), f"active STOR reply {resp!r}")
    down = retr_bytes(ftp, "down.bin")
    with open(os.path.join(work, "down.bin"), "wb") as f:
        f.write(down)
    names = ftp.nlst()
    expect(sorted(names) == ["down.bin", "up.bin"], f"active NLST gave {names!r}")
    mlsd = sorted(n for n, facts in ftp.mlsd() if facts.get("type") == "file")
    expect(mlsd == ["down.bin", "up.bin"], f"active MLSD gave {mlsd!r}")
    lines = []
    ftp.dir(lines.append)
    expect(len(lines) == 2, f"active LIST gave {lines!r}")

    # EPRT (RFC 2428) by hand: ftplib only uses it for IPv6.
    with socket.create_server((HOST, 0)) as listener:
        listener.settimeout(TIMEOUT)
        port = listener.getsockname()[1]
        resp = ftp.sendcmd(f"EPRT |1|{HOST}|{port}|")
        expect(resp.startswith("200"), f"EPRT reply {resp!r}")
        ftp.voidcmd("TYPE I")
        resp = ftp.sendcmd("RETR down.bin")
        expect(resp.startswith("150") or resp.startswith("125"), f"RETR after EPRT {resp!r}")
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(TIMEOUT)
            got = bytearray()
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                got += data
        resp = ftp.voidresp()
        expect(bytes(got) == down, "RETR over EPRT differs")

    # PORT to an address other than the client's is refused (no FTP bounce).
    reply = expect_perm_error(ftp.sendcmd, "PORT 10,1,2,3,200,10")
    expect(reply.startswith("5"), f"PORT to a third party: {reply!r}")
    expect(ftp.sendcmd("NOOP").startswith("200"), "NOOP after a refused PORT")


def scenario_abort(ftp, work):
    """ABOR (sent by ftplib as urgent data) during RETR of a big file; the session goes on."""
    size = ftp.size("huge.bin")
    small = read_file(os.path.join(work, "small.bin"))

    # 1. ftplib's abort() while reading the data connection by hand.
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("RETR huge.bin")
    conn.settimeout(TIMEOUT)
    received = 0
    while received < (1 << 20):
        data = conn.recv(65536)
        if not data:
            break
        received += len(data)
    resp = ftp.abort()
    expect(resp[:3] in ("426", "225", "226"), f"abort() reply {resp!r}")
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            received += len(data)
    except (ConnectionResetError, socket.timeout):
        pass
    conn.close()
    expect(received < size, f"the whole file ({received} bytes) came before ABOR took effect")
    if resp.startswith("426"):
        second = ftp.getresp()
        expect(second[:3] in ("225", "226"), f"reply to ABOR after 426: {second!r}")
    expect(ftp.sendcmd("NOOP").startswith("200"), "NOOP after ABOR")
    expect(ftp.pwd() == "/", "PWD after ABOR")
    expect(retr_bytes(ftp, "small.bin") == small, "RETR after ABOR")

    # 2. abort() from inside a retrbinary callback: retrbinary reads on to EOF, then the ABOR reply.
    state = {"received": 0, "abort_reply": None}

    def callback(chunk):
        state["received"] += len(chunk)
        if state["abort_reply"] is None and state["received"] >= (1 << 20):
            state["abort_reply"] = ftp.abort()

    final = ftp.retrbinary("RETR huge.bin", callback, blocksize=65536)
    expect(state["abort_reply"] is not None, "callback never aborted")
    expect(state["abort_reply"][:3] in ("426", "225", "226"), f"abort() reply {state['abort_reply']!r}")
    expect(state["received"] < size, "the whole file came before ABOR took effect (retrbinary)")
    expect(final[:3] in ("225", "226"), f"retrbinary final reply after abort: {final!r}")

    # 3. ABOR with no transfer in progress.
    resp = ftp.sendcmd("ABOR")
    expect(resp[:3] in ("225", "226"), f"ABOR when idle: {resp!r}")

    # The control connection still works, including a full transfer.
    expect(ftp.sendcmd("NOOP").startswith("200"), "NOOP at the end")
    expect(retr_bytes(ftp, "small.bin") == small, "RETR at the end")


def scenario_glob(ftp, work):
    """Server-side patterns in NLST and LIST, and ls-style flags (what ncftpls sends: NLST -1)."""
    # mget-style: NLST with a pattern, then RETR each name as returned.
    names = sorted(ftp.nlst("dir/log-*.txt"))
    expect(names == ["dir/log-1.txt", "dir/log-2.txt", "dir/log-3.txt"], f"nlst pattern: {names!r}")
    for i, name in enumerate(names, start=1):
        expect(retr_bytes(ftp, name) == f"log {i}\n".encode(), f"RETR {name}")
    names = sorted(ftp.nlst("/dir/log-[!2].*"))
    expect(names == ["/dir/log-1.txt", "/dir/log-3.txt"], f"nlst set: {names!r}")
    names = sorted(ftp.nlst("dir/?ther.da[a-z]"))
    expect(names == ["dir/other.dat"], f"nlst ? and range: {names!r}")
    # No match: 550, as for a missing file.
    try:
        ftp.nlst("dir/*.none")
        expect(False, "nlst of a pattern without matches succeeded")
    except ftplib.error_perm as e:
        expect(str(e).startswith("550"), f"no match: {e}")
    # Flags: ftplib sends the argument as given.
    ftp.cwd("dir")
    names = sorted(ftp.nlst("-1"))
    expect(names == ["-1", "log-1.txt", "log-2.txt", "log-3.txt", "other.dat"], f"NLST -1: {names!r}")
    names = sorted(ftp.nlst("-1a", "log-2*"))
    expect(names == ["log-2.txt"], f"NLST -1a pattern: {names!r}")
    # A file named -1 is reached as ./-1.
    expect(retr_bytes(ftp, "./-1") == b"dash one", "RETR ./-1")
    expect(ftp.nlst("./-1") == ["-1"], "NLST ./-1")
    lines = []
    ftp.retrlines("LIST -la", lines.append)
    listed = sorted(line.split()[-1] for line in lines)
    expect(listed == ["-1", "log-1.txt", "log-2.txt", "log-3.txt", "other.dat"], f"LIST -la: {lines!r}")
    lines = []
    ftp.retrlines("LIST -l *.txt", lines.append)
    listed = sorted(line.split()[-1] for line in lines)
    expect(listed == ["log-1.txt", "log-2.txt", "log-3.txt"], f"LIST pattern: {lines!r}")
    # MLSD never globs (RFC 3659).
    try:
        list(ftp.mlsd("*.txt"))
        expect(False, "MLSD with a pattern succeeded")
    except ftplib.error_perm as e:
        expect(str(e).startswith("550"), f"MLSD pattern: {e}")


SCENARIOS = {
    "binary": scenario_binary,
    "ascii": scenario_ascii,
    "listing": scenario_listing,
    "ops": scenario_ops,
    "active": scenario_active,
    "abort": scenario_abort,
    "glob": scenario_glob,
}


def main():
    if len(sys.argv) != 6 or sys.argv[1] not in SCENARIOS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(SCENARIOS)}}} PORT USER PASSWORD WORKDIR")
    name, port, user, password, work = sys.argv[1:]
    ftp = connect(int(port), user, password)
    try:
        SCENARIOS[name](ftp, work)
        resp = ftp.quit()
        expect(resp.startswith("221"), f"QUIT reply {resp!r}")
    finally:
        ftp.close()
    print(f"PASS {name}")


if __name__ == "__main__":
    main()
