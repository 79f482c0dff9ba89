#!/usr/bin/env python3
"""Verifies captured webhook deliveries with the Standard Webhooks reference library (PyPI
`standardwebhooks`), an implementation independent of boxoffice's own signing code.

Input: a JSON file with a list of {"secret", "headers": {name: value}, "body"} captured by a test
receiver. Every delivery must verify; as a check that the verifier is not vacuous, a tampered copy of
each body must be refused. Prints "verified N" and exits 0, or names the first failure and exits 1.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        deliveries = json.load(f)
    if not deliveries:
        print("no deliveries to verify", file=sys.stderr)
        return 1
    for i, d in enumerate(deliveries):
        hook = Webhook(d["secret"])
        try:
            payload = hook.verify(d["body"], d["headers"])
        except WebhookVerificationError as e:
            print(f"delivery {i} ({d['headers'].get('webhook-id')}): {e}", file=sys.stderr)
            return 1
        if not isinstance(payload, dict) or not {"type", "timestamp", "data"} <= payload.keys():
            print(f"delivery {i}: body is not a type/timestamp/data envelope", file=sys.stderr)
            return 1
        try:
            hook.verify(d["body"] + " ", d["headers"])
        except WebhookVerificationError:
            pass
        else:
            print(f"delivery {i}: a tampered body verified too", file=sys.stderr)
            return 1
    print(f"verified {len(deliveries)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
