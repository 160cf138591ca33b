"""Counts what a schemathesis HAR report holds: each operation's answers by status, and how
many purchases the stateful phase completed (POST /api/orders/purchase or /api/orders/checkout
answered 201)."""
import collections
import json
import re
import sys

counts = collections.Counter()
entries = json.load(open(sys.argv[1]))["log"]["entries"]
for entry in entries:
    request = entry["request"]
    path = re.sub(r"^https?://[^/]+", "", request["url"]).split("?")[0]
    path = re.sub(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "{id}", path)
    counts[(request["method"], path, entry["response"]["status"])] += 1
for (method, path, status), n in sorted(counts.items()):
    print(f"{n:6} {status} {method} {path}")
purchases = counts[("POST", "/api/orders/purchase", 201)]
checkouts = counts[("POST", "/api/orders/checkout", 201)]
print(
    f"requests: {len(entries)}; purchases completed (POST /api/orders/purchase 201): {purchases}; "
    f"checkouts completed (POST /api/orders/checkout 201): {checkouts}"
)
