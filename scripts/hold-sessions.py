#!/usr/bin/env python3
"""Opens N streaming chat requests at once against a Tandem gateway and holds them open, to measure how
many sessions the cluster admits (HTTP 200) and how many it refuses (429), e.g. within the verifier's KV
budget (docs/measurements.md, "Sessions held in the default KV budget").

    python3 scripts/hold-sessions.py HOST PORT N SECONDS

Every 10 s it prints the answers so far and the verifier's load from /v1/cluster. Start the gateway with
TANDEM_MAX_SESSIONS above N so that memory, not the gateway's session cap, decides."""
import http.client
import json
import sys
import threading
import time

host, port, n, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
answers = {}
held = []
lock = threading.Lock()


def one(i):
    c = http.client.HTTPConnection(host, port, timeout=seconds + 60)
    body = json.dumps({"messages": [{"role": "user", "content": f"Write a haiku about the number {i}."}],
                       "stream": True, "temperature": 0})
    c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    with lock:
        held.append((c, r))  # keep the connection: closing it would cancel the session
        answers[i] = r.status if r.status == 200 else (r.status, r.read()[:200])


for i in range(n):
    threading.Thread(target=one, args=(i,), daemon=True).start()
    time.sleep(0.01)
start = time.time()
while time.time() - start < seconds:
    time.sleep(10)
    with lock:
        values = list(answers.values())
    admitted = sum(1 for v in values if v == 200)
    refused = [v for v in values if isinstance(v, tuple)]
    c = http.client.HTTPConnection(host, port, timeout=30)
    c.request("GET", "/v1/cluster")
    replicas = json.loads(c.getresponse().read()).get("replicas", [])
    loads = [r["load"] for r in replicas if r["registration"]["role"] == "verifier"]
    print(f"t={time.time() - start:.0f}s answered={len(values)} admitted={admitted} refused={len(refused)} "
          f"verifier_load={loads}", flush=True)
    if refused:
        print("  first refusal:", refused[0], flush=True)
