-- wrk script: the same POST the replay probe sends (non-streaming, 1 token).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model": "m", "prompt": "the quick brown fox jumps over the lazy dog", "max_tokens": 1, "ignore_eos": true, "stream": false}'
