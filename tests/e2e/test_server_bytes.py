"""What the replay client does with the bytes of a misbehaving server: usage that does
not match what was streamed, empty SSE events, error objects in 200 responses, and
bodies or lines over the client's limits (docs/files.md "Result"). Each case is a real
HTTP server answering with fixed bytes; the client is knob.replay in the Lua host, and
knobengine itself (with the server as its serve_cmd) for what a trial records."""
import csv
import json
import os
import subprocess
import sys
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from common import Workspace, load_json

LUA_HOST = os.environ.get("LUA_HOST", "")
MIB = 1 << 20

REPLAY = """
local cjson = require("cjson")
local knob = require("knob")
local stream = arg[2] == "stream"
local body = stream and '{"prompt": "x", "stream": true, "stream_options": {"include_usage": true}}'
  or '{"prompt": "x"}'
local m = assert(knob.replay({ url = arg[1], bodies = { body }, concurrency = 1, request_count = tonumber(arg[3]),
  warmup = 0, request_timeout_s = 30, stream = stream, requests_csv = arg[4] }))
print(cjson.encode(m))
"""


def sse(*events):
    """An event stream: each event a dict (a JSON chunk) or raw bytes, then [DONE]."""
    out = b""
    for e in events:
        out += e if isinstance(e, bytes) else b"data: " + json.dumps(e).encode() + b"\n\n"
    return out + b"data: [DONE]\n\n"


def text_chunk(text):
    return {"choices": [{"index": 0, "text": text, "finish_reason": None}], "usage": None}


def usage_chunk(completion, prompt=3):
    return {"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}


def completion(text, usage=None):
    body = {"choices": [{"index": 0, "text": text, "finish_reason": "length"}]}
    if usage is not None:
        body["usage"] = {"prompt_tokens": 3, "completion_tokens": usage}
    return json.dumps(body).encode()


class FixedServer(ThreadingHTTPServer):
    """Answers every POST with the same status and bytes (HTTP/1.0: the body ends when
    the connection closes), GET /health with 200."""
    daemon_threads = True

    def __init__(self, body, status=200, content_type="text/event-stream"):
        self.body, self.status, self.content_type = body, status, content_type
        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self):
        return "http://127.0.0.1:%d/v1/completions" % self.server_address[1]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(self.server.status)
        self.send_header("Content-Type", self.server.content_type)
        self.end_headers()
        try:
            self.wfile.write(self.server.body)
        except OSError:  # the client gave up on the body (a limit): expected
            pass


class ReplayCase(Workspace):
    def setUp(self):
        if not LUA_HOST:
            self.skipTest("LUA_HOST not set")
        super().setUp()

    def replay(self, body, stream=True, requests=2, **server):
        """knob.replay against a server answering body: (metrics, requests.csv rows)."""
        script = self.write("replay.lua", REPLAY)
        csv_path = self.path("requests.csv")
        with FixedServer(body, **server) as srv:
            r = subprocess.run([LUA_HOST, script, srv.url, "stream" if stream else "plain", str(requests), csv_path],
                               capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(csv_path) as f:
            return json.loads(r.stdout), list(csv.DictReader(f))

    def assert_failed_with(self, rows, text):
        self.assertTrue(rows)
        for row in rows:
            self.assertIn(text, row["error"])


class TokenCounts(ReplayCase):
    def test_usage_far_from_the_streamed_chunks_is_not_believed(self):
        chunks = [text_chunk("tok%d " % i) for i in range(4)]
        m, rows = self.replay(sse(*chunks, usage_chunk(1e9)))
        self.assertEqual((m["completed"], m["token_mismatch"]), (2, 2))
        self.assertEqual(m["output_tokens"], 2 * 4)  # the chunks, not 1e9
        self.assertEqual([r["output_tokens"] for r in rows], ["4", "4"])
        self.assertEqual(m["token_mismatch_example"], {"usage": 1e9, "chunks": 4, "bytes": 20})

    def test_usage_below_the_streamed_chunks_is_not_believed(self):
        chunks = [text_chunk("t") for _ in range(40)]
        m, _ = self.replay(sse(*chunks, usage_chunk(1)), requests=1)
        self.assertEqual((m["token_mismatch"], m["output_tokens"]), (1, 40))

    def test_implausible_usage_values(self):
        for bad in (-5, 2.5, 1e300):
            with self.subTest(bad):
                m, _ = self.replay(sse(text_chunk("a "), text_chunk("b "), usage_chunk(bad)), requests=1)
                self.assertEqual((m["token_mismatch"], m["output_tokens"]), (1, 2))

    def test_usage_within_the_tolerance_is_believed(self):
        # several tokens per chunk (speculative decoding, a stream interval) is normal
        chunks = [text_chunk("word%d, " % i) for i in range(4)]
        for usage in (4, 3, 30, 8 * 4 + 16):
            with self.subTest(usage):
                m, rows = self.replay(sse(*chunks, usage_chunk(usage)), requests=1)
                self.assertEqual((m["token_mismatch"], m["output_tokens"]), (0, usage))
                self.assertNotIn("token_mismatch_example", m)

    def test_non_streaming_usage_against_the_text(self):
        m, rows = self.replay(completion("four words of text", usage=1e9), stream=False, requests=1,
                              content_type="application/json")
        self.assertEqual((m["completed"], m["token_mismatch"], m["output_tokens"]), (1, 1, 1))
        self.assertEqual(m["token_mismatch_example"]["bytes"], 18)
        m, rows = self.replay(completion("four words of text", usage=5), stream=False, requests=1,
                              content_type="application/json")
        self.assertEqual((m["token_mismatch"], m["output_tokens"]), (0, 5))


class EmptyEvents(ReplayCase):
    def test_empty_data_events_are_ignored(self):
        body = sse(b"data:\n\n", text_chunk("a "), b"data: \n\n", b"data:\r\n\r\n", text_chunk("b "), b"data\n\n",
                   usage_chunk(2))
        m, rows = self.replay(body)
        self.assertEqual((m["completed"], m["failed"], m["output_tokens"]), (2, 0, 4))
        self.assertEqual([r["error"] for r in rows], ["", ""])


class ErrorObjects(ReplayCase):
    MESSAGE = ("The model is overloaded: the KV cache has no room for this request; "
               "retry later or lower the load (request 1234, replica 7, a message well over a hundred bytes)")

    def test_non_streaming_200_with_an_error_object(self):
        body = json.dumps({"error": {"message": self.MESSAGE, "type": "ServiceUnavailable", "code": 503}}).encode()
        m, rows = self.replay(body, stream=False, content_type="application/json")
        self.assertEqual((m["completed"], m["failed"]), (0, 2))
        self.assert_failed_with(rows, "error in response: " + self.MESSAGE)

    def test_streamed_chunk_with_an_error_object(self):
        body = sse(text_chunk("a "), {"error": {"message": self.MESSAGE, "code": 500}})
        m, rows = self.replay(body)
        self.assertEqual(m["failed"], 2)
        self.assert_failed_with(rows, "error in stream: " + self.MESSAGE)

    def test_streaming_request_answered_with_a_json_error(self):
        body = json.dumps({"object": "error", "error": {"message": self.MESSAGE}}).encode()
        m, rows = self.replay(body, content_type="application/json")
        self.assertEqual(m["failed"], 2)
        self.assert_failed_with(rows, "error in response: " + self.MESSAGE)


class Limits(ReplayCase):
    def test_response_body_over_the_cap(self):
        body = completion("x" * (65 * MIB), usage=1)
        m, rows = self.replay(body, stream=False, requests=1, content_type="application/json")
        self.assertEqual((m["completed"], m["failed"]), (0, 1))
        self.assertEqual(rows[0]["error"], "response body over 64 MiB")

    def test_sse_line_over_the_limit(self):
        body = b'data: {"choices": [{"text": "' + b"x" * (17 * MIB) + b'"}]}\n\n' + sse()
        m, rows = self.replay(body, requests=1)
        self.assertEqual((m["completed"], m["failed"]), (0, 1))
        self.assertEqual(rows[0]["error"], "malformed stream: line over 16 MiB")


SERVER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
USAGE = float(sys.argv[2])

class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        out = b""
        for i in range(4):
            out += b"data: " + json.dumps({"choices": [{"index": 0, "text": "t%d " % i}]}).encode() + b"\n\n"
        usage = {"prompt_tokens": 2, "completion_tokens": USAGE}
        out += b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\ndata: [DONE]\n\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


class TrialWarning(Workspace):
    def baseline(self, usage):
        cfg = self.base_config()
        cfg["serve_cmd"] = [sys.executable, self.write("server.py", SERVER), "{port}", str(usage)]
        cfg["workload"]["max_new_tokens"] = 4
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json", "--results", "res")
        self.assertEqual((r.returncode, r.stdout), (0, "BASELINE_DONE\n"), r.stderr)
        return r.stderr, load_json(self.path("res", "baseline", "client_metrics.json"))

    def test_a_trial_with_mismatched_usage_says_so_once(self):
        err, m = self.baseline(1e9)
        self.assertEqual((m["completed"], m["token_mismatch"], m["output_tokens"]), (12, 12, 12 * 4))
        warnings = [l for l in err.splitlines() if "completion_tokens" in l]
        self.assertEqual(len(warnings), 1, err)
        self.assertIn("knobengine: baseline: 12 of 12 request(s) reported usage.completion_tokens far from what "
                      "they sent (e.g. 1000000000 vs 4 chunks, 12 bytes of text)", warnings[0])

    def test_a_trial_with_plausible_usage_says_nothing(self):
        err, m = self.baseline(6)
        self.assertEqual((m["token_mismatch"], m["output_tokens"]), (0, 12 * 6))
        self.assertNotIn("token_mismatch_example", m)
        self.assertNotIn("completion_tokens", err)


if __name__ == "__main__":
    unittest.main()
