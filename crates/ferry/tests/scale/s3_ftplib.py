#!/usr/bin/env python3
"""FTP semantics on object storage, driven by Python's ftplib against Ferry with --storage s3.

Usage: s3_ftplib.py PORT USER PASSWORD

Every check raises on failure (non-zero exit). The last line printed on success is "PASS". The Rust side
(crates/ferry/tests/s3_clients.rs) then confirms with rclone, directly on the bucket, what is stored:
the objects this script leaves, and that no multipart upload was left behind.
"""

import ftplib
import hashlib
import socket
import struct
import sys
import time

HOST = "127.0.0.1"
TIMEOUT = 60
MIB = 1024 * 1024


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def data(n, seed):
    """n deterministic bytes, different per seed."""
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:n])


def connect(port, user, password):
    ftp = ftplib.FTP()
    ftp.connect(HOST, port, timeout=TIMEOUT)
    ftp.login(user, password)
    ftp.voidcmd("TYPE I")
    return ftp


def retr(ftp, name, rest=None):
    chunks = []
    resp = ftp.retrbinary(f"RETR {name}", chunks.append, blocksize=65536, rest=rest)
    expect(resp.startswith("226"), f"RETR {name}: {resp!r}")
    return b"".join(chunks)


def binary(ftp, cmd, rest=None):
    """Opens a binary transfer (ftplib's listings switch to TYPE A)."""
    ftp.voidcmd("TYPE I")
    return ftp.transfercmd(cmd, rest)


def stor(ftp, name, payload, cmd="STOR", rest=None):
    conn = binary(ftp, f"{cmd} {name}", rest)
    for i in range(0, len(payload), 256 * 1024):
        conn.sendall(payload[i:i + 256 * 1024])
    conn.close()
    resp = ftp.voidresp()
    expect(resp.startswith("226"), f"{cmd} {name}: {resp!r}")


def abort_upload(ftp, conn):
    """ABOR during an upload (urgent data, as ftplib sends it): 426 for the transfer, then 226."""
    resp = ftp.abort()
    expect(resp[:3] in ("426", "225", "226"), f"abort() reply {resp!r}")
    conn.close()
    if resp.startswith("426"):
        second = ftp.getresp()
        expect(second[:3] in ("225", "226"), f"reply after 426: {second!r}")


def reset_upload(ftp, name, payload):
    """STOR that sends `payload` and then resets the data connection: must fail with 426/451."""
    conn = binary(ftp, f"STOR {name}")
    conn.sendall(payload)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    try:
        resp = ftp.voidresp()
        raise AssertionError(f"a reset upload got {resp!r}")
    except (ftplib.error_temp, ftplib.error_perm) as e:
        expect(str(e)[:3] in ("426", "451"), f"reset upload: {e}")


def size(ftp, name):
    ftp.voidcmd("TYPE I")
    return ftp.size(name)


def perm_error(fn, *args):
    """fn(*args) must fail with a 5xx reply; returns it."""
    try:
        resp = fn(*args)
    except ftplib.error_perm as e:
        return str(e)
    raise AssertionError(f"{fn.__name__}{args} succeeded ({resp!r}), expected 5xx")


def mlsd(ftp, path):
    return {name: facts for name, facts in ftp.mlsd(path)}


def year_of(modify):
    return int(modify[:4])


def main():
    port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    ftp = connect(port, user, password)
    this_year = time.gmtime().tm_year

    # MKD writes a directory marker: listed, with a sensible time (not 1970).
    expect(ftp.mkd("d").startswith("/d"), "MKD d")
    perm_error(ftp.mkd, "d")
    perm_error(ftp.mkd, "missing/x")
    facts = mlsd(ftp, "/")
    expect(facts["d"]["type"] == "dir", f"MLSD / {facts}")
    expect(year_of(facts["d"]["modify"]) >= this_year - 1, f"directory time {facts['d']}")
    expect(ftp.nlst("d") == [], "empty directory lists nothing")

    # STOR bigger than a part (multipart), RETR byte-exact, REST + RETR is a ranged read.
    old = data(12 * MIB + 321, 1)
    stor(ftp, "d/big file.bin", old)
    got = size(ftp, "d/big file.bin")
    expect(got == len(old), f"SIZE {got} != {len(old)}")
    mdtm = ftp.voidcmd("MDTM d/big file.bin")
    expect(mdtm.startswith("213 ") and int(mdtm[4:8]) >= this_year - 1, f"MDTM {mdtm}")
    expect(retr(ftp, "d/big file.bin") == old, "RETR byte-exact")
    expect(retr(ftp, "d/big file.bin", rest=5 * MIB + 3) == old[5 * MIB + 3:], "REST + RETR")
    facts = ftp.sendcmd("MLST d/big file.bin")
    expect(f"size={len(old)};" in facts.lower(), f"MLST {facts}")

    # ABOR in the middle of an upload: the multipart upload is aborted, the old object stays.
    conn = binary(ftp, "STOR d/big file.bin")
    new = data(9 * MIB, 2)
    conn.sendall(new[:7 * MIB])
    abort_upload(ftp, conn)
    expect(size(ftp, "d/big file.bin") == len(old), "old object size after ABOR")
    expect(retr(ftp, "d/big file.bin") == old, "old object intact after ABOR")

    # A data connection reset mid-upload: same.
    reset_upload(ftp, "d/big file.bin", new[:6 * MIB])
    expect(retr(ftp, "d/big file.bin") == old, "old object intact after a reset")

    # A new object that failed never appears.
    reset_upload(ftp, "d/never.bin", new[:6 * MIB])
    expect("never.bin" not in ftp.nlst("d"), "a failed upload is not listed")
    perm_error(ftp.size, "d/never.bin")

    # REST + STOR and APPE continue the object (the kept part copied server-side).
    tail = data(2 * MIB, 3)
    stor(ftp, "d/big file.bin", tail, rest=6 * MIB + 5)
    expect_now = old[:6 * MIB + 5] + tail
    expect(retr(ftp, "d/big file.bin") == expect_now, "REST + STOR")
    stor(ftp, "d/big file.bin", b"appended", cmd="APPE")
    expect_now += b"appended"
    expect(retr(ftp, "d/big file.bin") == expect_now, "APPE")
    stor(ftp, "d/small.txt", b"abc", cmd="APPE")
    stor(ftp, "d/small.txt", b"def", cmd="APPE")
    expect(retr(ftp, "d/small.txt") == b"abcdef", "APPE of a small object")

    # MFMT: refused clearly, the store keeps the time.
    reply = perm_error(ftp.voidcmd, "MFMT 20200101000000 d/small.txt")
    expect(reply.startswith("550") and "not supported" in reply, f"MFMT: {reply}")

    # RNFR/RNTO of a file: copy then delete. Of a directory: refused clearly.
    ftp.rename("d/small.txt", "d/renamed é.txt")
    expect(retr(ftp, "d/renamed é.txt") == b"abcdef", "renamed content")
    perm_error(ftp.size, "d/small.txt")
    ftp.mkd("d/sub")
    try:
        ftp.rename("d/sub", "d/sub2")
        raise AssertionError("renaming a directory succeeded")
    except ftplib.error_perm as e:
        expect(str(e).startswith("550") and "not supported" in str(e), f"RNTO dir: {e}")

    # RMD of a non-empty directory is refused, never recursive.
    reply = perm_error(ftp.rmd, "d")
    expect(reply.startswith("550"), f"RMD non-empty: {reply}")
    expect(retr(ftp, "d/renamed é.txt") == b"abcdef", "nothing deleted by RMD")

    # The last file goes: the directory stays listed, then RMD works.
    ftp.rmd("d/sub")
    ftp.delete("d/renamed é.txt")
    ftp.delete("d/big file.bin")
    facts = mlsd(ftp, "/")
    expect("d" in facts and facts["d"]["type"] == "dir", f"directory gone with its files: {facts}")
    expect(year_of(facts["d"]["modify"]) >= this_year - 1, f"directory time {facts['d']}")
    expect(ftp.nlst("d") == [], "empty after deletes")
    ftp.rmd("d")
    expect("d" not in mlsd(ftp, "/"), "RMD")

    # What stays for rclone to confirm.
    ftp.mkd("kept")
    stor(ftp, "kept/old.bin", old)
    conn = binary(ftp, "STOR kept/old.bin")
    conn.sendall(new[:6 * MIB])
    abort_upload(ftp, conn)
    stor(ftp, "kept/appended.bin", b"x" * 10)
    stor(ftp, "kept/appended.bin", b"y" * 10, cmd="APPE")
    ftp.mkd("kept/empty dir")
    ftp.quit()
    print(hashlib.sha256(old).hexdigest())
    print("PASS")


if __name__ == "__main__":
    main()
