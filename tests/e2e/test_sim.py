"""The simulated vLLM-compatible server: protocol (byte for byte, OpenAI format),
readiness, the direction of each knob at a fixed seed, and every fault mode."""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

from common import KNOBSIM, Sim, http_get, http_post, reserve_port


def normalize(text):
    return re.sub(r'"created":\d+', '"created":0', text)


def stream(sim, path, body):
    """POSTs a streaming request; returns (status, headers, [(t, line)], t0)."""
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=30)
    t0 = time.monotonic()
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    lines = []
    while True:
        line = resp.readline()
        if not line:
            break
        lines.append((time.monotonic(), line.decode()))
    conn.close()
    return resp.status, dict(resp.getheaders()), lines, t0


class Protocol(unittest.TestCase):
    def test_health_and_models(self):
        with Sim(model="Qwen/Qwen2.5-0.5B-Instruct") as s:
            self.assertEqual(http_get(s.url + "/health"), (200, b""))
            status, body = http_get(s.url + "/v1/models")
            self.assertEqual(status, 200)
            self.assertEqual(json.loads(body)["data"][0]["id"], "Qwen/Qwen2.5-0.5B-Instruct")

    def test_refuses_while_loading_then_ready(self):
        # a load far longer than starting a process and connecting: still loading here
        with Sim("--time-scale", "0", load_time="3", ready=False, port=reserve_port()) as s:
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", s.port), timeout=1).close()
            s.wait_ready()

    def test_completion_non_streaming_exact(self):
        with Sim("--time-scale", "0") as s:
            status, body = http_post(s.url + "/v1/completions",
                                     {"model": "m", "prompt": "a b c", "max_tokens": 3, "ignore_eos": True, "seed": 5})
            self.assertEqual(status, 200)
            text = json.loads(body)["choices"][0]["text"]
            self.assertEqual(normalize(body.decode()),
                '{"id":"cmpl-1","object":"text_completion","created":0,"model":"m","choices":[{"index":0,'
                '"text":%s,"logprobs":null,"finish_reason":"length","stop_reason":null}],'
                '"usage":{"prompt_tokens":3,"total_tokens":6,"completion_tokens":3}}' % json.dumps(text))
            self.assertEqual(len(text.split()), 3)

    def test_completion_streaming_exact(self):
        with Sim("--time-scale", "0") as s:
            status, headers, lines, _ = stream(s, "/v1/completions", {
                "model": "m", "prompt": "x y", "max_tokens": 2, "ignore_eos": True, "stream": True,
                "stream_options": {"include_usage": True}})
            self.assertEqual(status, 200)
            self.assertEqual(headers["Content-Type"], "text/event-stream; charset=utf-8")
            raw = normalize("".join(l for _, l in lines))
            chunks = [json.loads(l[6:]) for l in raw.split("\n\n") if l.startswith("data: {")]
            t1, t2 = chunks[0]["choices"][0]["text"], chunks[1]["choices"][0]["text"]
            head = '"id":"cmpl-1","object":"text_completion","created":0,"model":"m"'
            self.assertEqual(raw,
                'data: {%s,"choices":[{"index":0,"text":%s,"logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}\n\n'
                'data: {%s,"choices":[{"index":0,"text":%s,"logprobs":null,"finish_reason":"length","stop_reason":null}],"usage":null}\n\n'
                'data: {%s,"choices":[],"usage":{"prompt_tokens":2,"total_tokens":4,"completion_tokens":2}}\n\n'
                'data: [DONE]\n\n' % (head, json.dumps(t1), head, json.dumps(t2), head))

    def test_chat_streaming_and_not(self):
        with Sim("--time-scale", "0") as s:
            msgs = [{"role": "user", "content": "hello there"}]
            status, body = http_post(s.url + "/v1/chat/completions", {"model": "m", "messages": msgs, "max_tokens": 2, "ignore_eos": True})
            d = json.loads(body)
            self.assertEqual((status, d["object"], d["choices"][0]["message"]["role"], d["usage"]["completion_tokens"]),
                             (200, "chat.completion", "assistant", 2))
            status, _, lines, _ = stream(s, "/v1/chat/completions", {"model": "m", "messages": msgs, "max_tokens": 2,
                                                                    "ignore_eos": True, "stream": True})
            events = [l[6:].strip() for _, l in lines if l.startswith("data: ")]
            self.assertEqual(events[-1], "[DONE]")
            first = json.loads(events[0])
            self.assertEqual(first["object"], "chat.completion.chunk")
            self.assertEqual(first["choices"][0]["delta"], {"role": "assistant", "content": ""})
            self.assertEqual(len(events), 4)  # role, 2 tokens, [DONE]; no usage unless asked
            self.assertNotIn("usage", first)

    def test_max_tokens_and_eos(self):
        with Sim("--time-scale", "0") as s:
            _, body = http_post(s.url + "/v1/completions", {"model": "m", "prompt": "p", "max_tokens": 40, "ignore_eos": True})
            self.assertEqual(json.loads(body)["usage"]["completion_tokens"], 40)
            # without ignore_eos the model stops at a seeded length, the same every time
            counts = {json.loads(http_post(s.url + "/v1/completions", {"model": "m", "prompt": "q r", "max_tokens": 40})[1])["usage"]["completion_tokens"]
                      for _ in range(3)}
            self.assertEqual(len(counts), 1)
            self.assertLessEqual(counts.pop(), 40)

    def test_seed_and_temperature(self):
        with Sim("--time-scale", "0") as s:
            def text(**kw):
                body = dict({"model": "m", "prompt": "same prompt", "max_tokens": 6, "ignore_eos": True}, **kw)
                return json.loads(http_post(s.url + "/v1/completions", body)[1])["choices"][0]["text"]
            self.assertEqual(text(temperature=0), text(temperature=0))
            self.assertEqual(text(seed=3, temperature=1), text(seed=3, temperature=1))
            self.assertNotEqual(text(seed=3, temperature=1), text(seed=4, temperature=1))

    def test_bad_requests(self):
        with Sim("--time-scale", "0") as s:
            cases = [
                (b"{not json", 400, "Invalid JSON body"),
                (json.dumps({"model": "m", "prompt": 5}).encode(), 400, "'prompt' must be a string"),
                (json.dumps({"model": "m", "prompt": "x", "max_tokens": 0}).encode(), 400, "max_tokens must be an integer >= 1"),
                (json.dumps({"model": "m", "prompt": "x", "stream": "yes"}).encode(), 400, "must be booleans"),
                (json.dumps({"model": "other", "prompt": "x"}).encode(), 404, "The model `other` does not exist."),
            ]
            for body, code, msg in cases:
                status, out = http_post(s.url + "/v1/completions", body)
                err = json.loads(out)
                self.assertEqual((status, err["object"], err["code"]), (code, "error", code))
                self.assertIn(msg, err["message"])
            status, _ = http_post(s.url + "/v1/nothing", b"{}")
            self.assertEqual(status, 404)

    def test_unknown_flag_exits_2(self):
        r = subprocess.run([KNOBSIM, "serve", "m", "--port", "0", "--no-such-flag"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertTrue(r.stderr.startswith("usage: knobsim serve MODEL"))
        self.assertIn("knobsim serve: error: unrecognized arguments: --no-such-flag", r.stderr)

    def test_bad_attention_backend(self):
        r = subprocess.run([KNOBSIM, "serve", "m", "--port", "0"], env={"VLLM_ATTENTION_BACKEND": "NOPE"},
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("Invalid attention backend: 'NOPE'", r.stderr)


SHARED = "system preamble " * 150


def workload(sim, n=24, concurrency=8, shared=True, max_tokens=16, long=False):
    """Closed-loop load; returns per-request (latency, ttft, max inter-token gap,
    median inter-token gap)."""
    prompts = [(SHARED if shared and i % 2 == 0 else "") + ("question %d " % i) * (20 + 40 * (i % 3)) for i in range(n)]
    if long:  # contexts of about 1500 tokens
        prompts = ["long context %d " % i + "filler " * 1500 for i in range(n)]

    def one(p):
        _, _, lines, t0 = stream(sim, "/v1/completions", {"model": "m", "prompt": p, "max_tokens": max_tokens,
                                                          "ignore_eos": True, "stream": True})
        times = [t for t, l in lines if l.startswith("data: {")]
        gaps = [b - a for a, b in zip(times, times[1:])]
        return times[-1] - t0, times[0] - t0, max(gaps), sorted(gaps)[len(gaps) // 2]

    with ThreadPoolExecutor(concurrency) as ex:
        return list(ex.map(one, prompts))


def mean(xs):
    return sum(xs) / len(xs)


def ttft_mean(rs):
    return mean([r[1] for r in rs])


def latency_mean(rs):
    return mean([r[0] for r in rs])


class KnobDirections(unittest.TestCase):
    """Each knob moves latency in its documented direction (fixed seed, no jitter).

    Both configs are measured alternately, twice, and each side's smallest figure is
    compared: a busy machine only ever adds time, so the minimum is the model's own."""

    def measure(self, *flags, env=None, scale="0.5", **kw):
        with Sim("--seed", "3", "--time-scale", scale, *flags, env=env) as s:
            return workload(s, **kw)

    def compare(self, stat, a=(), b=(), a_env=None, b_env=None, **kw):
        sa, sb = [], []
        for _ in range(2):
            sa.append(stat(self.measure(*a, env=a_env, **kw)))
            sb.append(stat(self.measure(*b, env=b_env, **kw)))
        return min(sa), min(sb)

    def test_enforce_eager_is_slower(self):
        base, eager = self.compare(latency_mean, b=("--enforce-eager",))
        self.assertGreater(eager, 1.15 * base)

    def test_prefix_caching_helps_shared_prefixes_only(self):
        base, cached = self.compare(ttft_mean, b=("--enable-prefix-caching",))
        self.assertLess(cached, 0.8 * base)
        # without shared prefixes there is nothing to reuse: no gain (a small hashing cost)
        base, cached = self.compare(latency_mean, b=("--enable-prefix-caching",), shared=False)
        self.assertGreater(cached, base * 0.9)

    def test_chunked_prefill_removes_decode_stalls(self):
        max_gap = lambda rs: max(r[2] for r in rs)
        base, chunked = self.compare(max_gap, b=("--enable-chunked-prefill",))
        self.assertLess(chunked, 0.7 * base)

    def test_fp8_kv_cache_helps_under_memory_pressure(self):
        tight = ("--kv-capacity-tokens", "800")
        base, fp8 = self.compare(latency_mean, a=tight, b=tight + ("--kv-cache-dtype", "fp8"))
        self.assertLess(fp8, 0.85 * base)
        # with room to spare it only costs a little
        base, fp8 = self.compare(latency_mean, b=("--kv-cache-dtype", "fp8"))
        self.assertGreater(fp8, base)

    def test_flashinfer_speeds_long_decodes_slows_prefill(self):
        # eight long prompts: the prefill of them all, then decode steps only. Steps of
        # about 25 ms, so a millisecond of scheduling delay is small beside the effect
        room = ("--kv-capacity-tokens", "100000")
        fi_env = {"VLLM_ATTENTION_BACKEND": "FLASHINFER"}
        shape = dict(n=8, concurrency=8, max_tokens=32, long=True, scale="2")
        # the median gap is a decode-only step's: a prompt that the client's threads sent
        # late is prefilled inside the others' decodes, which stalls a few of their gaps
        tpot = lambda rs: mean([r[3] for r in rs])
        base, fi = self.compare(tpot, a=room, b=room, b_env=fi_env, **shape)
        self.assertLess(fi, 0.9 * base)
        # the last first token comes once every prompt is prefilled, however the client's
        # threads happened to split them into batches
        last_ttft = lambda rs: max(r[1] for r in rs)
        base, fi = self.compare(last_ttft, a=room, b=room, b_env=fi_env, **shape)
        self.assertGreater(fi, 1.05 * base)


class FixedLatency(unittest.TestCase):
    def test_tokens_never_early_and_lateness_logged(self):
        """--fixed-ttft-ms/--fixed-tpot-ms: token k is written no earlier than
        TTFT + (k-1) * TPOT after the request, and the server logs how late it was."""
        with Sim("--fixed-ttft-ms", "30", "--fixed-tpot-ms", "10") as s:
            _, _, lines, t0 = stream(s, "/v1/completions", {
                "model": "m", "prompt": "x", "max_tokens": 5, "ignore_eos": True, "stream": True})
            token_times = [t for t, l in lines if l.startswith("data: {")]
            self.assertEqual(len(token_times), 5)
            for k, t in enumerate(token_times):
                self.assertGreaterEqual((t - t0) * 1000, 30 + 10 * k - 0.5)
            s.proc.send_signal(signal.SIGTERM)
            log = s.proc.stdout.read().decode()
        m = re.search(r"fixed-latency lateness \(us\): first token p50 (\d+) p95 (\d+), "
                      r"every token p50 (\d+) p95 (\d+)", log)
        self.assertIsNotNone(m, log)
        self.assertLessEqual(int(m.group(1)), int(m.group(2)))

    def test_clock_starts_at_first_byte_and_first_token_log(self):
        """A request's fixed TTFT counts from its first byte (a slow upload is inside it,
        as it is inside a client's TTFT); --first-token-log names each streamed request
        by its `user` field with the server's own TTFT and the wall-clock time of its
        first byte."""
        fd, log_path = tempfile.mkstemp(prefix="knobsim-first-tokens-")
        os.close(fd)
        with Sim("--fixed-ttft-ms", "300", "--fixed-tpot-ms", "10", "--first-token-log", log_path) as s:
            body = json.dumps({"model": "m", "prompt": "x y z", "max_tokens": 2, "ignore_eos": True,
                               "stream": True, "user": "slow,upload"}).encode()
            sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
            head = ("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    "Content-Length: %d\r\n\r\n" % len(body)).encode()
            t0, wall0 = time.monotonic(), time.time()
            sock.sendall(head + body[:10])
            time.sleep(0.15)  # the stimulus: the rest of the body comes 150 ms later
            sock.sendall(body[10:])
            data = b""
            while b"data: {" not in data:
                data += sock.recv(65536)
            first_token_s = time.monotonic() - t0
            sock.close()
            stream(s, "/v1/completions", {"model": "m", "prompt": "x", "max_tokens": 1, "stream": True})
            s.proc.send_signal(signal.SIGTERM)
            s.proc.wait(10)
        # due 300 ms after the first byte, not 300 ms after the last (450)
        self.assertGreaterEqual(first_token_s * 1000, 300 - 1)
        self.assertLess(first_token_s * 1000, 400)
        with open(log_path) as f:
            rows = [line.strip().split(",") for line in f]
        os.unlink(log_path)
        self.assertEqual([r[0] for r in rows], ["slow;upload", "-"])
        for r in rows:
            self.assertGreaterEqual(float(r[1]), 300000)
            self.assertLess(float(r[1]), 400000)
        # the slow request's first byte came after wall0 and before the rest of its body
        self.assertGreaterEqual(int(rows[0][2]), int(wall0 * 1e6) - 1000)
        self.assertLess(int(rows[0][2]), int((wall0 + 0.15) * 1e6))


class Faults(unittest.TestCase):
    def test_fail_start(self):
        r = subprocess.run([KNOBSIM, "serve", "m", "--port", "0", "--load-time-s", "0.1", "--fail-start"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("simulated failure while loading the model", r.stderr)

    def test_hang_start_never_listens(self):
        with Sim("--hang-start", load_time="0.05", ready=False, port=reserve_port()) as s:
            # not synchronisation: a negative check needs time, ten load times here, in
            # which a server that would listen has long done so
            time.sleep(0.5)
            self.assertIsNone(s.proc.poll())
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", s.port), timeout=1).close()

    def test_crash_after_requests(self):
        with Sim("--time-scale", "0", "--crash-after-requests", "2") as s:
            for _ in range(2):
                try:
                    http_post(s.url + "/v1/completions", {"model": "m", "prompt": "x", "max_tokens": 2}, timeout=5)
                except OSError:
                    pass
            s.proc.wait(5)
            self.assertEqual(s.proc.returncode, -6)  # SIGABRT
            self.assertIn(b"simulated crash after 2 requests", s.proc.stdout.read())

    def test_error_rate(self):
        with Sim("--time-scale", "0", "--error-rate", "1") as s:
            status, body = http_post(s.url + "/v1/completions", {"model": "m", "prompt": "x"})
            self.assertEqual(status, 500)
            self.assertEqual(json.loads(body)["type"], "InternalServerError")
        with Sim("--time-scale", "0", "--error-rate", "0.5", "--seed", "9") as s:
            codes = [http_post(s.url + "/v1/completions", {"model": "m", "prompt": "x", "max_tokens": 1})[0] for _ in range(40)]
            self.assertTrue(5 < codes.count(500) < 35, codes)

    def test_sigterm_exits_cleanly(self):
        with Sim() as s:
            s.proc.terminate()
            self.assertEqual(s.proc.wait(5), 0)
