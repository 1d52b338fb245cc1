"""Helpers for the end-to-end tests: paths of the built binaries, temporary
workspaces, free ports, running knobengine, and starting the simulated server."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

KNOBENGINE = os.environ.get("KNOBENGINE", "")
KNOBSIM = os.environ.get("KNOBSIM", "")
SOURCE_DIR = os.environ.get("KNOB_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
SHARED_TRACES = os.path.abspath(os.path.join(SOURCE_DIR, "..", "shared", "traces"))


def load_json(path):
    with open(path) as f:
        return json.load(f)


def read(path):
    with open(path) as f:
        return f.read()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def http_post(url, body, timeout=30):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Sim:
    """A knobsim server as a subprocess; use as a context manager."""

    def __init__(self, *args, env=None, model="m", load_time="0.05", ready=True):
        self.port = free_port()
        self.argv = [KNOBSIM, "serve", model, "--port", str(self.port), "--load-time-s", load_time, *args]
        self.env = dict(os.environ, **(env or {}))
        self.ready = ready
        self.proc = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def __enter__(self):
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if self.ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("knobsim exited with %s: %s" % (self.proc.returncode, self.proc.stdout.read().decode()))
            try:
                if http_get(self.url + "/health", timeout=0.5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise AssertionError("knobsim not ready")

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


class Workspace(unittest.TestCase):
    """A test case with a fresh temporary directory (self.dir) and helpers to write a
    config and run knobengine in it."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="knobtest-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def write(self, name, text):
        p = self.path(name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        mode = "wb" if isinstance(text, bytes) else "w"
        with open(p, mode) as f:
            f.write(text)
        return p

    def write_dataset(self, name="data.jsonl", n=6):
        lines = []
        for i in range(n):
            words = " ".join("w%d" % ((i * 7 + k) % 13) for k in range(5 + 20 * (i % 3)))
            lines.append(json.dumps({"prompt": "shared prefix " * 20 + words if i % 2 else words}))
        return self.write(name, "\n".join(lines) + "\n")

    def base_config(self, **over):
        """A small, fast config against knobsim."""
        self.write_dataset()
        cfg = {
            "serve_cmd": [KNOBSIM, "serve", "m", "--port", "{port}", "--load-time-s", "0.02",
                          "--time-scale", "0.05", "--seed", "1"],
            "server": {"port": free_port(), "ready_timeout_s": 10, "stop_timeout_s": 5},
            "workload": {"dataset": "data.jsonl", "model": "m", "concurrency": 4,
                         "request_count": 12, "max_new_tokens": 8, "warmup_requests": 2,
                         "request_timeout_s": 10},
            "knobs": [
                {"name": "prefix_caching", "flag": "--enable-prefix-caching"},
                {"name": "eager", "flag": "--enforce-eager"},
            ],
            "nsys": {"bin": "nsys-not-installed-here"},
        }
        for k, v in over.items():
            cfg[k] = v
        return cfg

    def write_config(self, cfg, name="cfg.json"):
        return self.write(name, json.dumps(cfg, indent=2) if not isinstance(cfg, str) else cfg)

    def run_engine(self, *args, timeout=300, env=None):
        return subprocess.run([KNOBENGINE, *args], cwd=self.dir, capture_output=True, text=True,
                              timeout=timeout, env=dict(os.environ, **(env or {})))

    def listing(self):
        out = []
        for root, dirs, files in os.walk(self.dir):
            for f in files:
                out.append(os.path.relpath(os.path.join(root, f), self.dir))
        return sorted(out)
