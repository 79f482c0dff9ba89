"""Parses a Prometheus text exposition from stdin with the reference parser (prometheus_client) and
prints every sample as JSON lines: [name, labels, value]. Exits 3 when the parser is not installed,
so a test can never pass without it."""
import json
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("prometheus_client is not installed: python3 -m pip install prometheus_client", file=sys.stderr)
    sys.exit(3)

for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        print(json.dumps([sample.name, sample.labels, sample.value]))
