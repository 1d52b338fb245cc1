#!/usr/bin/env python3
"""Writes a tiny llama-architecture model with random weights as GGUF, for the real
CPU engine benchmark (bench/llama_cpu.py): nothing is downloaded. Run with the llama
peer's python (it has the gguf package):
  build-peers/llama/bin/python bench/make_gguf.py OUT.gguf [--seed S]

The tokenizer is SentencePiece-style ("llama"): <unk> <s> </s>, the 256 byte-fallback
tokens, "▁" and "▁w", then one piece per word "▁w0".."▁w999" and "▁a", so a prompt of such words
costs one token per word plus <s>, as llama.cpp's own tokenizer counts it. The weights
are random (seeded), with one property built in: residual dimension 0 carries a
constant that no layer writes to, and the output rows of the special and byte tokens
point against it, so greedy decoding never ends a reply early (the server has no
`ignore_eos`) and every reply is whole words."""
import argparse

import numpy as np

import gguf

N_EMBD, N_LAYER, N_HEAD, N_FF, N_CTX = 512, 8, 8, 1408, 4096
WORDS = ["w%d" % i for i in range(1000)] + ["a"]


def vocab():
    tokens, scores, types = ["<unk>", "<s>", "</s>"], [0.0, 0.0, 0.0], [
        gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    for b in range(256):
        tokens.append("<0x%02X>" % b)
        scores.append(0.0)
        types.append(gguf.TokenType.BYTE)
    for piece in ("\u2581", "\u2581w"):  # the pieces SentencePiece merges "▁w17" through
        tokens.append(piece)
        scores.append(0.0)
        types.append(gguf.TokenType.NORMAL)
    for i, w in enumerate(WORDS):
        tokens.append("\u2581" + w)
        scores.append(-float(i + 1))
        types.append(gguf.TokenType.NORMAL)
    return tokens, scores, types


def weights(rng, n_vocab, n_special):
    f16 = lambda *shape: (rng.standard_normal(shape) * 0.02).astype(np.float16)
    ones = lambda n: np.ones(n, dtype=np.float32)
    embd = f16(n_vocab, N_EMBD)
    embd[:, 0] = 1.0  # the constant in residual dimension 0 (far above the others' 0.02)
    out = f16(n_vocab, N_EMBD)
    out[:n_special, 0] = -60.0  # special and byte tokens: never the greedy choice
    out[n_special:, 0] = 0.0
    tensors = {"token_embd.weight": embd, "output_norm.weight": ones(N_EMBD), "output.weight": out}
    for i in range(N_LAYER):
        p = "blk.%d." % i
        attn_out, ffn_down = f16(N_EMBD, N_EMBD), f16(N_EMBD, N_FF)
        attn_out[0, :] = 0.0  # nothing writes to dimension 0
        ffn_down[0, :] = 0.0
        tensors.update({p + "attn_norm.weight": ones(N_EMBD), p + "ffn_norm.weight": ones(N_EMBD),
                        p + "attn_q.weight": f16(N_EMBD, N_EMBD), p + "attn_k.weight": f16(N_EMBD, N_EMBD),
                        p + "attn_v.weight": f16(N_EMBD, N_EMBD), p + "attn_output.weight": attn_out,
                        p + "ffn_gate.weight": f16(N_FF, N_EMBD), p + "ffn_up.weight": f16(N_FF, N_EMBD),
                        p + "ffn_down.weight": ffn_down})
    return tensors


def write(path, seed):
    tokens, scores, types = vocab()
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("knobengine-tiny-random")
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    # <unk> <s> </s>, the byte tokens, "▁" and "▁w": never a greedy pick, so replies are words
    for name, t in weights(np.random.default_rng(seed), len(tokens), 3 + 256 + 2).items():
        w.add_tensor(name, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    write(args.out, args.seed)
