"""Parses a Prometheus text exposition from stdin with the reference parser (prometheus_client) and
prints one JSON line per metric family, {"family": name, "type": type}, and per sample,
[name, labels, value].

It also checks what the parser lets through but Prometheus relies on: every family declares its type,
and every histogram series has cumulative (non-decreasing) buckets ending in le="+Inf", a _count equal
to that last bucket, and a _sum. A violation exits 4 with the reason.

Exits 3 when the parser is not installed, so a test can never pass without it."""
import json
import math
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("prometheus_client is not installed: python3 -m pip install prometheus_client", file=sys.stderr)
    sys.exit(3)


def fail(why):
    print(why, file=sys.stderr)
    sys.exit(4)


def check_histogram(family):
    series = {}
    for s in family.samples:
        labels = {k: v for k, v in s.labels.items() if k != "le"}
        key = tuple(sorted(labels.items()))
        entry = series.setdefault(key, {"buckets": [], "count": None, "sum": None})
        if s.name == family.name + "_bucket":
            entry["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name == family.name + "_count":
            entry["count"] = s.value
        elif s.name == family.name + "_sum":
            entry["sum"] = s.value
    for key, e in series.items():
        where = f"{family.name}{dict(key)}"
        if not e["buckets"] or e["buckets"][-1][0] != math.inf:
            fail(f"{where}: the buckets do not end in le=\"+Inf\"")
        les = [le for le, _ in e["buckets"]]
        if les != sorted(les):
            fail(f"{where}: the buckets are not in le order")
        counts = [c for _, c in e["buckets"]]
        if any(b < a for a, b in zip(counts, counts[1:])):
            fail(f"{where}: the buckets are not cumulative: {counts}")
        if e["count"] != counts[-1]:
            fail(f"{where}: _count {e['count']} differs from the +Inf bucket {counts[-1]}")
        if e["sum"] is None:
            fail(f"{where}: no _sum")


for family in text_string_to_metric_families(sys.stdin.read()):
    if family.type == "unknown":
        fail(f"{family.name}: no # TYPE line")
    if family.type == "histogram":
        check_histogram(family)
    print(json.dumps({"family": family.name, "type": family.type}))
    for sample in family.samples:
        print(json.dumps([sample.name, sample.labels, sample.value]))
