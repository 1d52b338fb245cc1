"""The replay client's clock, against a scripted server: what it measures must not
depend on when the client got around to reading."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

from common import Workspace

HOLD_S = 1.0  # how long the answer waits unread in the client's socket

LUA_HOST = os.environ.get("LUA_HOST", "")

REPLAY = """
local cjson = require("cjson")
local knob = require("knob")
local m = assert(knob.replay({ url = arg[1], bodies = { '{"prompt": "x", "stream": true}' },
  concurrency = 1, request_count = 1, warmup = 0, request_timeout_s = 10, stream = true }))
print(cjson.encode({ failed = m.failed, ttft = m.ttft_ms.p50, latency = m.p50_latency_ms, lag = m.read_lag_ms.max }))
"""


class ScriptedStream(threading.Thread):
    """Answers one streaming request: headers at once, the whole answer 50 ms later,
    sent while the client process is stopped (SIGSTOP) and left unread for HOLD_S."""

    def __init__(self):
        super().__init__(daemon=True)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.client_pid = None
        self.answered_after = None
        self.held = False
        self.error = None

    def run(self):
        try:
            conn, _ = self.listener.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, body = data.split(b"\r\n\r\n", 1)
                length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
                while len(body) < length:
                    body += conn.recv(65536)
                answer = (b'data: {"choices": [{"text": "a"}], "usage": null}\n\n'
                          b'data: {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}\n\n'
                          b"data: [DONE]\n\n")
                t0 = time.monotonic()
                # a known length, so the response ends without the connection closing: a
                # FIN arriving before the client reads would be merged with the data and
                # give it the FIN's later arrival time
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(answer))
                time.sleep(0.03)
                os.kill(self.client_pid, signal.SIGSTOP)
                time.sleep(0.02)
                self.answered_after = time.monotonic() - t0
                conn.sendall(answer)
                time.sleep(HOLD_S)
                self.held = True
                os.kill(self.client_pid, signal.SIGCONT)
                conn.settimeout(10)
                conn.recv(1)  # until the client hangs up
        except Exception as e:  # reported by the test
            self.error = e
            if self.client_pid:
                os.kill(self.client_pid, signal.SIGCONT)


class ArrivalTimes(Workspace):
    def test_streamed_data_is_dated_when_it_arrived(self):
        """A client busy elsewhere (here: stopped) reads a chunk HOLD_S after it
        arrived; TTFT and latency still end when it arrived (kernel timestamps)."""
        if not LUA_HOST:
            self.skipTest("LUA_HOST not set")
        script = self.write("replay.lua", REPLAY)
        server = ScriptedStream()
        proc = subprocess.Popen([LUA_HOST, script, "http://127.0.0.1:%d/v1/completions" % server.port],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        server.client_pid = proc.pid
        server.start()
        out, err = proc.communicate(timeout=30)
        server.join(5)
        self.assertIsNone(server.error)
        self.assertEqual(proc.returncode, 0, err)
        m = json.loads(out)
        self.assertEqual(m["failed"], 0)
        self.assertTrue(server.held)  # the client really was kept from reading
        answered_ms = server.answered_after * 1000
        # dated on arrival (~50 ms), not when read (~1050 ms): anything under half the
        # hold is on the arrival side, whatever else the machine is doing
        self.assertGreaterEqual(m["ttft"], answered_ms - 5)
        self.assertLess(m["ttft"], answered_ms + HOLD_S * 500)
        self.assertLess(m["latency"], answered_ms + HOLD_S * 500)
        # and the client knows it read late: the data waited about HOLD_S
        self.assertGreater(m["lag"], HOLD_S * 500)
        self.assertLess(m["lag"], HOLD_S * 1000 + 500)


if __name__ == "__main__":
    unittest.main()
