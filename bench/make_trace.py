#!/usr/bin/env python3
"""Writes an nsys-schema SQLite export with N kernel rows, plus memcpy (N/10), OSRT
(N/10) and NVTX (N/10) rows, deterministic: bench/make_trace.py OUT.sqlite N"""
import random
import sqlite3
import sys


def main(out, n):
    rnd = random.Random(42)
    db = sqlite3.connect(out)
    db.executescript("""
        PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
        CREATE TABLE StringIds (id INTEGER NOT NULL PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE CUPTI_ACTIVITY_KIND_KERNEL (start INTEGER NOT NULL, end INTEGER NOT NULL,
            deviceId INTEGER NOT NULL, streamId INTEGER NOT NULL, demangledName INTEGER NOT NULL,
            shortName INTEGER NOT NULL, gridX INTEGER, gridY INTEGER, gridZ INTEGER,
            blockX INTEGER, blockY INTEGER, blockZ INTEGER);
        CREATE TABLE CUPTI_ACTIVITY_KIND_MEMCPY (start INTEGER NOT NULL, end INTEGER NOT NULL,
            deviceId INTEGER NOT NULL, bytes INTEGER NOT NULL, copyKind INTEGER NOT NULL);
        CREATE TABLE CUPTI_ACTIVITY_KIND_MEMSET (start INTEGER NOT NULL, end INTEGER NOT NULL, bytes INTEGER NOT NULL);
        CREATE TABLE OSRT_API (start INTEGER NOT NULL, end INTEGER NOT NULL, eventClass INTEGER NOT NULL,
            globalTid INTEGER, nameId INTEGER NOT NULL);
        CREATE TABLE NVTX_EVENTS (start INTEGER NOT NULL, end INTEGER, eventType INTEGER NOT NULL,
            text TEXT, globalTid INTEGER, textId INTEGER, domainId INTEGER);
        CREATE TABLE META_DATA_EXPORT (name TEXT, value TEXT);
        INSERT INTO META_DATA_EXPORT VALUES ('EXPORT_PRODUCT_VERSION', 'synthetic');
    """)
    names = ["kernel_%d<float, %d>(float const*, float*, int)" % (i, i * 32) for i in range(200)]
    strings = [(i + 1, s) for i, s in enumerate(names)]
    base = len(strings)
    for i, f in enumerate(["ppoll", "futex", "read", "write", "epoll_wait", "pthread_cond_timedwait"]):
        strings.append((base + i + 1, f))
    for i, f in enumerate(["get_batch", "prefill", "decode"]):
        strings.append((base + 7 + i, f))
    db.executemany("INSERT INTO StringIds VALUES (?, ?)", strings)
    t = 0
    batch = []
    for i in range(n):
        d = rnd.randint(2000, 200000)
        name = min(int(rnd.expovariate(0.05)), 199) + 1
        batch.append((t, t + d, i % 2, 7, name, name, 1, 1, 1, 128, 1, 1))
        t += d // 2 + 100
        if len(batch) == 100000:
            db.executemany("INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", batch)
            batch = []
    db.executemany("INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", batch)
    m = max(1, n // 10)
    db.executemany("INSERT INTO CUPTI_ACTIVITY_KIND_MEMCPY VALUES (?,?,0,?,?)",
                   ((i * 1000, i * 1000 + rnd.randint(500, 5000), rnd.randint(1, 1 << 20), rnd.choice((1, 2, 8))) for i in range(m)))
    db.executemany("INSERT INTO OSRT_API VALUES (?,?,27,1,?)",
                   ((i * 1000, i * 1000 + rnd.randint(500, 50000), base + 1 + rnd.randint(0, 5)) for i in range(m)))
    db.executemany("INSERT INTO NVTX_EVENTS VALUES (?,?,?,NULL,1,?,0)",
                   ((i * 1000, i * 1000 + rnd.randint(100, 9000), 60 if i % 3 else 59, base + 7 + i % 3) for i in range(m)))
    db.commit()
    db.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
