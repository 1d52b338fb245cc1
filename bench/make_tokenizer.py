#!/usr/bin/env python3
"""Writes a word-level tokenizer to DIR (w0..w999, one token each; anything else one
[UNK]), loadable by transformers' AutoTokenizer: AIPerf and GuideLLM need a tokenizer
and no model hub is reachable. knobsim counts the same words as tokens.
Run with a peer's python: build-peers/aiperf/bin/python bench/make_tokenizer.py DIR"""
import json
import os
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers


def write(out):
    os.makedirs(out, exist_ok=True)
    vocab = {"[UNK]": 0}
    for i in range(1000):
        vocab["w%d" % i] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # decodes words joined by spaces
    tok.save(os.path.join(out, "tokenizer.json"))
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]",
                   "model_max_length": 1000000}, f)


if __name__ == "__main__":
    write(sys.argv[1])
