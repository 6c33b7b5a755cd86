#!/usr/bin/env python3
"""A read-only FUSE file system whose every read blocks: a disk that stalls, for bench/stall.sh.

    python3 bench/stallfs.py SOURCE MOUNTPOINT DELAY_SECONDS READ_LOG

Mirrors the folder SOURCE at MOUNTPOINT; each read of file data sleeps DELAY_SECONDS first (as an NFS
server that stops answering, or a failing disk retrying, would hold the reading thread) and appends a
line to READ_LOG when it starts, so that the benchmark knows the stall has begun. Metadata is served at
once. Needs fusepy (`pip install fusepy`) and libfuse2; runs in the foreground until unmounted.
"""

import os
import sys
import threading
import time

from fuse import FUSE, FuseOSError, Operations  # fusepy


class Stalling(Operations):
    """Passes everything through to `root`; data reads wait `delay` seconds."""

    def __init__(self, root, delay, log):
        self.root = root
        self.delay = delay
        self.log = log
        self.lock = threading.Lock()

    def _path(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def getattr(self, path, fh=None):
        try:
            st = os.lstat(self._path(path))
        except OSError as e:
            raise FuseOSError(e.errno)
        keys = ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink", "st_size", "st_uid")
        return {k: getattr(st, k) for k in keys}

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._path(path))

    def open(self, path, flags):
        return os.open(self._path(path), os.O_RDONLY)

    def read(self, path, size, offset, fh):
        with self.lock:
            with open(self.log, "a") as f:
                f.write(f"{time.time():.3f} read {path} {offset} {size}\n")
        time.sleep(self.delay)
        return os.pread(fh, size, offset)

    def release(self, path, fh):
        os.close(fh)


def main():
    source, mountpoint, delay, log = sys.argv[1:5]
    FUSE(Stalling(source, float(delay), log), mountpoint, foreground=True, ro=True, allow_other=True,
         nothreads=False)


if __name__ == "__main__":
    main()
