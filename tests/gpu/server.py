"""A small OpenAI-compatible LLM server on PyTorch, for checking knobengine end to end
on a real GPU under a real Nsight Systems (tests/gpu/run.sh).

Random weights (no download): a decoder-only transformer whose size and knobs change
real GPU work. Words are tokens (hashed into the vocabulary). Endpoints: GET /health,
GET /v1/models, POST /v1/completions (streaming with a usage chunk, and not). The
engine loop marks NVTX ranges get_batch, prefill and decode, like the phases the
engine reports.

Knobs (each changes the kernels the GPU runs):
  --fused-attention     torch's scaled_dot_product_attention instead of matmul+softmax
  --bf16                bfloat16 weights and activations instead of float32
  --max-batch N         requests decoded together (default 1: one at a time)

Usage: server.py --port P [--layers 12] [--hidden 1024] [--device cuda] [knobs]
"""
import argparse
import asyncio
import json
import math
import time
import traceback
import zlib

import torch
import torch.nn.functional as F
from aiohttp import web

VOCAB = 32000


def nvtx_push(name):
    if torch.cuda.is_available():
        torch.cuda.nvtx.range_push(name)


def nvtx_pop():
    if torch.cuda.is_available():
        torch.cuda.nvtx.range_pop()


class Block(torch.nn.Module):
    def __init__(self, hidden, heads, fused):
        super().__init__()
        self.heads, self.fused = heads, fused
        self.norm1, self.norm2 = torch.nn.LayerNorm(hidden), torch.nn.LayerNorm(hidden)
        self.qkv = torch.nn.Linear(hidden, 3 * hidden)
        self.out = torch.nn.Linear(hidden, hidden)
        self.up = torch.nn.Linear(hidden, 4 * hidden)
        self.down = torch.nn.Linear(4 * hidden, hidden)

    def attention(self, x, mask):
        b, t, h = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        if self.fused:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            scores = q @ k.transpose(-1, -2) / math.sqrt(h // self.heads)
            y = torch.softmax(scores + mask, dim=-1) @ v
        return self.out(y.transpose(1, 2).reshape(b, t, h))

    def forward(self, x, mask):
        x = x + self.attention(self.norm1(x), mask)
        return x + self.down(F.gelu(self.up(self.norm2(x))))


class Model(torch.nn.Module):
    def __init__(self, layers, hidden, fused):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, hidden)
        self.blocks = torch.nn.ModuleList(Block(hidden, max(1, hidden // 64), fused) for _ in range(layers))
        self.head = torch.nn.Linear(hidden, VOCAB)

    def forward(self, tokens, lengths):
        """tokens: [batch, time] left-aligned, padded; returns the next token of each row
        (greedy), read at its own last position."""
        b, t = tokens.shape
        x = self.embed(tokens)
        pos = torch.arange(t, device=tokens.device)
        causal = pos[None, :] <= pos[:, None]
        valid = pos[None, :] < lengths[:, None]
        allowed = causal[None, :, :] & valid[:, None, :]
        mask = torch.zeros(b, 1, t, t, dtype=x.dtype, device=x.device)
        mask.masked_fill_(~allowed[:, None], float("-inf"))
        for blk in self.blocks:
            x = blk(x, mask)
        last = x[torch.arange(b, device=x.device), lengths - 1]
        return self.head(last).argmax(-1)


def tokenize(text):
    return [zlib.crc32(w.encode()) % VOCAB for w in text.split()] or [0]


class Request:
    def __init__(self, prompt, max_tokens, stream, include_usage):
        self.tokens = tokenize(prompt)
        self.prompt_tokens = len(self.tokens)
        self.max_tokens, self.stream, self.include_usage = max_tokens, stream, include_usage
        self.generated = 0
        self.error = None
        self.queue = asyncio.Queue()  # token texts, then None


class Engine:
    """Continuous batching in steps: new requests are prefilled (their first token),
    then every running request decodes one token per step."""

    def __init__(self, args):
        self.device = torch.device(args.device)
        self.dtype = torch.bfloat16 if args.bf16 else torch.float32
        torch.manual_seed(0)
        self.model = Model(args.layers, args.hidden, args.fused_attention).to(self.device, self.dtype).eval()
        self.max_batch = args.max_batch
        self.waiting, self.running = [], []
        self.wake = asyncio.Event()

    def step(self, batch):
        width = max(len(r.tokens) for r in batch)
        tokens = torch.zeros(len(batch), width, dtype=torch.long)
        for i, r in enumerate(batch):
            tokens[i, : len(r.tokens)] = torch.tensor(r.tokens)
        lengths = torch.tensor([len(r.tokens) for r in batch])
        with torch.no_grad():
            out = self.model(tokens.to(self.device), lengths.to(self.device))
        return out.tolist()  # waits for the GPU

    def emit(self, batch, next_tokens):
        for r, tok in zip(batch, next_tokens):
            r.tokens.append(tok)
            r.generated += 1
            r.queue.put_nowait("w%d " % tok)
            if r.generated >= r.max_tokens:
                r.queue.put_nowait(None)

    def fail(self, batch, error):
        """A step failed: its requests end with the error (the server keeps serving)."""
        traceback.print_exc()
        for r in batch:
            r.error = "%s: %s" % (type(error).__name__, error)
            r.queue.put_nowait(None)

    async def loop(self):
        while True:
            if not self.waiting and not self.running:
                self.wake.clear()
                await self.wake.wait()
            try:
                self.one_step()
            except Exception as e:  # noqa: BLE001 - reported to the requests and the log
                self.fail(self.running + self.waiting, e)
                self.running, self.waiting = [], []
            await asyncio.sleep(0)  # let the HTTP side send what was emitted

    def one_step(self):
        """Prefill the requests that fit (their first token), or else one decode step
        of every running request."""
        nvtx_push("get_batch")
        room = self.max_batch - len(self.running)
        new, self.waiting = self.waiting[:room], self.waiting[room:]
        self.running += new  # a failing step ends them too
        nvtx_pop()
        batch, phase = (new, "prefill") if new else (self.running, "decode")
        nvtx_push(phase)
        self.emit(batch, self.step(batch))
        nvtx_pop()
        self.running = [r for r in self.running if r.generated < r.max_tokens]

    def submit(self, req):
        self.waiting.append(req)
        self.wake.set()


def chunk(rid, model, text, finish, usage=None):
    c = {"id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
         "choices": [] if text is None else [{"index": 0, "text": text, "finish_reason": finish}]}
    if usage is not None:
        c["usage"] = usage
    return "data: " + json.dumps(c) + "\n\n"


def make_app(args):
    engine = Engine(args)
    counter = [0]

    async def health(_):
        return web.Response(status=200)

    async def models(_):
        return web.json_response({"object": "list", "data": [{"id": args.model, "object": "model"}]})

    async def completions(request):
        body = await request.json()
        max_tokens = int(body.get("max_tokens") or 16)
        stream = bool(body.get("stream"))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        req = Request(str(body.get("prompt", "")), max_tokens, stream, include_usage)
        counter[0] += 1
        rid = "cmpl-%d" % counter[0]
        engine.submit(req)
        usage = lambda: {"prompt_tokens": req.prompt_tokens, "completion_tokens": req.generated,
                         "total_tokens": req.prompt_tokens + req.generated}
        if not stream:
            text = []
            while (t := await req.queue.get()) is not None:
                text.append(t)
            if req.error:
                return web.json_response({"object": "error", "message": req.error, "type": "InternalServerError"},
                                         status=500)
            return web.json_response({"id": rid, "object": "text_completion", "model": args.model,
                                      "choices": [{"index": 0, "text": "".join(text), "finish_reason": "length"}],
                                      "usage": usage()})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        while (t := await req.queue.get()) is not None:
            await resp.write(chunk(rid, args.model, t, None).encode())
        if req.error:
            await resp.write(("data: " + json.dumps({"error": {"message": req.error}}) + "\n\n").encode())
        if include_usage:
            await resp.write(chunk(rid, args.model, None, None, usage()).encode())
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def start_engine(app):
        app["engine"] = asyncio.create_task(engine.loop())

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/completions", completions)
    app.on_startup.append(start_engine)
    return app


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--model", default="random-12l")
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--device", default="cuda")
    p.add_argument("--fused-attention", action="store_true")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--max-batch", type=int, default=1)
    args = p.parse_args()
    if args.fused_attention and not hasattr(F, "scaled_dot_product_attention"):
        p.error("--fused-attention needs PyTorch 2.0 or later (scaled_dot_product_attention)")
    web.run_app(make_app(args), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
