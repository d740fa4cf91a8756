"""Check that two `emotion-pi classify --json` outputs agree (e.g. x86_64 vs aarch64).

Same files, face counts, boxes (to 1 px) and emotions; probabilities within 1e-3.
Usage: python tools/compare_classify.py A.jsonl B.jsonl
"""

from __future__ import annotations

import json
import sys


def compare(a_path: str, b_path: str) -> list[str]:
    """Differences between the two outputs, empty when they agree."""
    a = [json.loads(line) for line in open(a_path)]
    b = [json.loads(line) for line in open(b_path)]
    problems = []
    if len(a) != len(b):
        return [f"{len(a)} rows vs {len(b)} rows"]
    for ra, rb in zip(a, b):
        where = f"{ra.get('file')} face {ra.get('face')}"
        for key in ("file", "status", "face", "emotion"):
            if ra.get(key) != rb.get(key):
                problems.append(f"{where}: {key} {ra.get(key)!r} vs {rb.get(key)!r}")
        if any(abs(x - y) > 1 for x, y in zip(ra.get("box", []), rb.get("box", []))):
            problems.append(f"{where}: box {ra['box']} vs {rb['box']}")
        for name, p in ra.get("probs", {}).items():
            if abs(p - rb["probs"][name]) > 1e-3:
                problems.append(f"{where}: {name} {p} vs {rb['probs'][name]}")
    return problems


if __name__ == "__main__":
    issues = compare(sys.argv[1], sys.argv[2])
    rows = sum(1 for _ in open(sys.argv[1]))
    print("\n".join(issues) if issues else f"{rows} rows agree: {sys.argv[1]} and {sys.argv[2]}")
    sys.exit(1 if issues else 0)
