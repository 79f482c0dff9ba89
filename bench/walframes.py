#!/usr/bin/env python3
"""Pages written per commit, by b-tree, from a copy of a boxoffice database and its WAL.

The WAL holds, since its last reset, every page each commit wrote (a 24-byte frame header and the
page); a frame whose commit-size field is set ends a commit. This reads the frame headers, keeps the
frames of the WAL's current generation (their salts equal the header's), and names each page's b-tree
with SQLite's `dbstat` table, so a change to the schema or to what a sale writes can be judged by the
pages a group commit writes (each one a 4 KiB write the commit's sync waits for).

    cp DATA_DIR/boxoffice.db* /tmp/snap/   # while a rush runs; the copy of the WAL may end torn,
    bench/walframes.py /tmp/snap/boxoffice.db   # which only costs the last frames

Needs Python's sqlite3 module built with dbstat (Debian's is).
"""
import collections
import os
import shutil
import sqlite3
import struct
import sys
import tempfile


def frames(wal_path):
    data = open(wal_path, "rb").read()
    if len(data) < 32:
        return [], 0
    page_size = struct.unpack(">I", data[8:12])[0]
    salts = struct.unpack(">II", data[16:24])
    pages, commits, off = [], 0, 32
    while off + 24 + page_size <= len(data):
        page, commit_size, s1, s2 = struct.unpack(">IIII", data[off:off + 16])
        if (s1, s2) != salts:
            break
        pages.append(page)
        commits += commit_size != 0
        off += 24 + page_size
    return pages, commits


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: walframes.py COPY_OF_boxoffice.db (its -wal next to it)")
    db = sys.argv[1]
    if not os.path.exists(db + "-wal"):
        sys.exit(f"no {db}-wal: copy the data dir's boxoffice.db* while the server writes")
    pages, commits = frames(db + "-wal")
    if commits == 0:
        sys.exit("no whole commit in the WAL")
    # Opening a database reads its WAL too, so dbstat knows the pages the WAL added; but closing the
    # last connection checkpoints the WAL into the file and deletes it. So a scratch copy is opened,
    # and the one given stays as it was, to be read again.
    with tempfile.TemporaryDirectory() as scratch:
        copy = os.path.join(scratch, "copy.db")
        shutil.copyfile(db, copy)
        shutil.copyfile(db + "-wal", copy + "-wal")
        conn = sqlite3.connect(copy)
        names = dict(conn.execute("SELECT pageno, name FROM dbstat"))
        conn.close()
    by_tree = collections.Counter(names.get(p, "(free or new)") for p in pages)
    print(f"{len(pages)} frames in {commits} commits: {len(pages) / commits:.1f} per commit")
    for name, n in by_tree.most_common():
        print(f"  {name:40s} {n / commits:6.2f} per commit")


if __name__ == "__main__":
    main()
