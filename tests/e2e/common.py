"""Helpers for the end-to-end tests: paths of the built binaries, temporary
workspaces, reserved ports, running knobengine, starting the simulated server, and
waiting for events (never for a fixed time)."""
import atexit
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

KNOBENGINE = os.environ.get("KNOBENGINE", "")
KNOBSIM = os.environ.get("KNOBSIM", "")
LUA_HOST = os.environ.get("LUA_HOST", "")
SOURCE_DIR = os.environ.get("KNOB_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
SHARED_TRACES = os.path.abspath(os.path.join(SOURCE_DIR, "..", "shared", "traces"))


def load_json(path):
    with open(path) as f:
        return json.load(f)


def read(path):
    with open(path) as f:
        return f.read()


PORT_LOCKS = os.path.join(tempfile.gettempdir(), "knobengine-test-ports")
_held_ports = {}  # port -> open lock file, held for the life of this test process


@atexit.register
def _release_ports():
    for f in _held_ports.values():
        f.close()


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def reserve_port():
    """A port for a server that knobengine starts itself (configs name a fixed port).

    Taken outside the kernel's ephemeral range, so no client connection of any test can
    land on it, and reserved for this process by an exclusive flock on a file named
    after it: test processes running in parallel never get the same port. It is free
    when returned; the reservation lasts until this process exits."""
    os.makedirs(PORT_LOCKS, exist_ok=True)
    lo, hi = _ephemeral_range()
    candidates = [p for p in range(10000, 65536) if not lo <= p <= hi]
    start = (os.getpid() * 7919) % len(candidates)
    for k in range(len(candidates)):
        port = candidates[(start + k) % len(candidates)]
        if port in _held_ports:
            continue
        f = open(os.path.join(PORT_LOCKS, str(port)), "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                f.close()
                continue
        _held_ports[port] = f
        return port
    raise RuntimeError("no port left to reserve")


def wait_until(condition, timeout=30, what="the condition"):
    """Polls condition() until it returns a true value (returned); fails after timeout
    seconds. The timeout is a deadline for an event that must happen, not a measurement."""
    deadline = time.monotonic() + timeout
    while True:
        v = condition()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.01)


def servers_on(port):
    """The command lines of knobsim processes serving `port`."""
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [l for l in ps.splitlines() if "knobsim" in l and "--port %d" % port in l]


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
    """A knobsim server as a subprocess; use as a context manager. By default it binds
    a port of its own choosing and reports it (--port 0 --port-file); pass port= to
    fix it (for tests that look at the port before the server listens)."""

    def __init__(self, *args, env=None, model="m", load_time="0.05", ready=True, port=None):
        self.port = port
        self.port_file = None
        self.argv = [KNOBSIM, "serve", model, "--load-time-s", load_time, *args]
        self.env = dict(os.environ, **(env or {}))
        self.ready = ready
        self.proc = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def __enter__(self):
        argv = list(self.argv)
        if self.port is None:
            fd, self.port_file = tempfile.mkstemp(prefix="knobsim-port-")
            os.close(fd)
            os.remove(self.port_file)
            argv += ["--port", "0", "--port-file", self.port_file]
        else:
            argv += ["--port", str(self.port)]
        self.proc = subprocess.Popen(argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if self.ready:
            self.wait_ready()
        return self

    def _exited(self):
        if self.proc.poll() is not None:
            raise AssertionError("knobsim exited with %s: %s" % (self.proc.returncode, self.proc.stdout.read().decode()))

    def wait_ready(self, timeout=10):
        def port_known():
            self._exited()
            if self.port is None and os.path.exists(self.port_file):
                with open(self.port_file) as f:
                    self.port = int(f.read())
            return self.port is not None

        def healthy():
            self._exited()
            try:
                return http_get(self.url + "/health", timeout=0.5)[0] == 200
            except OSError:
                return False

        wait_until(port_known, timeout, "knobsim to report its port")
        wait_until(healthy, timeout, "knobsim to be ready")

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        if self.port_file and os.path.exists(self.port_file):
            os.remove(self.port_file)


class Engine:
    """knobengine running in the background with progress lines on (KNOBENGINE_PROGRESS=1),
    its stdout and stderr collected line by line, so a test can wait for a phase
    ("replaying", "stopping", a table row) instead of sleeping."""

    def __init__(self, args, cwd, env=None):
        self.proc = subprocess.Popen([KNOBENGINE, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=dict(os.environ, KNOBENGINE_PROGRESS="1", **(env or {})))
        self.out, self.err = [], []
        self._threads = [threading.Thread(target=self._collect, args=(s, l), daemon=True)
                         for s, l in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self._threads:
            t.start()

    @staticmethod
    def _collect(stream, lines):
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_for(self, pattern, stream="err", timeout=60):
        """Waits until a line of stderr (or stdout) matches the regex; returns it."""
        lines = self.err if stream == "err" else self.out
        rx = re.compile(pattern)

        def seen():
            hit = next((l for l in list(lines) if rx.search(l)), None)
            if hit is None and self.proc.poll() is not None:
                for t in self._threads:
                    t.join(5)
                hit = next((l for l in list(lines) if rx.search(l)), None)
                if hit is None:
                    raise AssertionError("knobengine exited (%s) before printing /%s/:\n%s"
                                         % (self.proc.returncode, pattern, "\n".join(self.err)))
            return hit
        return wait_until(seen, timeout, "/%s/ on %s" % (pattern, stream))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def finish(self, timeout=60):
        """Waits for the exit (a deadline, not a measurement); returns (code, stdout, stderr)."""
        self.proc.wait(timeout)
        for t in self._threads:
            t.join(10)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode, "\n".join(self.out) + ("\n" if self.out else ""), "\n".join(self.err)


# three on/off knobs for knobsim: the middle one makes the server fail to start (masks
# x1x are failed trials), the others change its latency
KNOBS_WITH_A_FAILURE = [
    {"name": "prefix_caching", "flag": "--enable-prefix-caching"},
    {"name": "broken", "flag": "--fail-start"},
    {"name": "eager", "flag": "--enforce-eager"},
]

# a row of the results table: trial index, then the mask string
TABLE_ROW = re.compile(r"^\d+,[0-9a-z]+,")


def table_rows(stdout):
    return [l for l in stdout.splitlines() if TABLE_ROW.match(l)]


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
            "server": {"port": reserve_port(), "ready_timeout_s": 10, "stop_timeout_s": 5},
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

    def search(self, *args, env=None):
        """A search with cfg.json that must succeed: its stdout and summary.json."""
        r = self.run_engine("--config", "cfg.json", *args, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout, load_json(self.path("results", "search", "latest", "summary.json"))

    def run_engine(self, *args, timeout=300, env=None):
        return subprocess.run([KNOBENGINE, *args], cwd=self.dir, capture_output=True, text=True,
                              timeout=timeout, env=dict(os.environ, **(env or {})))

    def start_engine(self, *args, env=None):
        return Engine(args, self.dir, env)

    def listing(self):
        out = []
        for root, dirs, files in os.walk(self.dir):
            for f in files:
                out.append(os.path.relpath(os.path.join(root, f), self.dir))
        return sorted(out)
