#!/usr/bin/env python3
"""Drives a Tandem gateway with the official `openai` client: one non-streamed and one streamed
chat completion. Usage: openai_client_check.py BASE_URL (e.g. http://127.0.0.1:8080/v1)."""
import sys

from openai import OpenAI

client = OpenAI(base_url=sys.argv[1], api_key="unused")
model = client.models.list().data[0].id
messages = [{"role": "user", "content": "Say hello in five words."}]

reply = client.chat.completions.create(model=model, messages=messages, max_tokens=24, temperature=0, seed=1)
text = reply.choices[0].message.content
assert reply.choices[0].finish_reason in ("stop", "length"), reply
assert text, reply
assert reply.usage.completion_tokens > 0, reply
print("OK non-stream:", repr(text))

pieces, finish = [], None
for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=24, temperature=0, seed=1,
                                            stream=True):
    if chunk.choices:
        delta = chunk.choices[0].delta
        if delta and delta.content:
            pieces.append(delta.content)
        if chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
streamed = "".join(pieces)
assert finish in ("stop", "length"), finish
assert streamed == text, (streamed, text)
print("OK stream:", repr(streamed))
