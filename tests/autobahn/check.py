#!/usr/bin/env python3
"""Compare an Autobahn|Testsuite report with the checked-in expectations.

    check.py server|client [--update] [--agent NAME] [--report PATH] [--expected PATH]

Reads tests/autobahn/reports/<side>/index.json (written by wstest) and
tests/autobahn/expected-<side>.json, a map from case id to
{"behavior": ..., "behaviorClose": ...}. Prints the count of cases per
behavior, every difference, and exits non-zero when:
  * a case's behavior or behaviorClose differs from the expectation,
  * a case is expected but missing from the report, or reported but not expected,
  * any case is not OK/INFORMATIONAL (FAILED, NON-STRICT, WRONG CODE, ...).
--skipped-from SPEC names a wstest spec whose _ci_exclude patterns were
skipped in this run: expected cases matching them may be missing, and
--update then keeps their old expectations.
--update rewrites the expectation file from the report (the last rule still
applies to the exit status, so a regression is never silently blessed green).
"""
import argparse
import collections
import fnmatch
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ACCEPTABLE = {"OK", "INFORMATIONAL"}


def case_key(case_id):
    return tuple(int(p) if p.isdigit() else p for p in case_id.split("."))


def load_report(path, agent):
    with open(path) as f:
        index = json.load(f)
    if agent not in index:
        sys.exit(f"check: agent {agent!r} not in {path} (agents: {', '.join(sorted(index)) or 'none'})")
    return {
        case_id: {"behavior": r.get("behavior"), "behaviorClose": r.get("behaviorClose")}
        for case_id, r in index[agent].items()
    }, index[agent]


def load_expected(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        data = json.load(f)
    return {k: v for k, v in data.items() if not k.startswith("_")}


def write_expected(path, side, actual):
    lines = ["{"]
    lines.append(
        '  "_comment": ' + json.dumps(
            f"Expected Autobahn|Testsuite outcome per case for evsock's {side} role. "
            "Regenerate with: AUTOBAHN_UPDATE=1 scripts/autobahn.sh " + side
        ) + ","
    )
    ids = sorted(actual, key=case_key)
    for i, case_id in enumerate(ids):
        comma = "," if i + 1 < len(ids) else ""
        lines.append(f"  {json.dumps(case_id)}: {json.dumps(actual[case_id], sort_keys=True)}{comma}")
    lines.append("}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def fmt(outcome):
    return f"{outcome['behavior']}/{outcome['behaviorClose']}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("side", choices=["server", "client"])
    ap.add_argument("--update", action="store_true", help="rewrite the expectation file")
    ap.add_argument("--agent", default="evsock")
    ap.add_argument("--report", help="index.json path (default: reports/<side>/index.json)")
    ap.add_argument("--expected", help="expectation path (default: expected-<side>.json)")
    ap.add_argument("--skipped-from", help="wstest spec whose _ci_exclude cases were not run")
    args = ap.parse_args()
    skipped = []
    if args.skipped_from:
        with open(args.skipped_from) as f:
            skipped = json.load(f).get("_ci_exclude", [])

    def was_skipped(case_id):
        return any(fnmatch.fnmatchcase(case_id, p) for p in skipped)

    report_path = args.report or os.path.join(HERE, "reports", args.side, "index.json")
    expected_path = args.expected or os.path.join(HERE, f"expected-{args.side}.json")
    if not os.path.exists(report_path):
        sys.exit(f"check: no report at {report_path}")
    actual, raw = load_report(report_path, args.agent)
    expected = load_expected(expected_path)

    by_behavior = collections.Counter(r["behavior"] for r in actual.values())
    by_close = collections.Counter(r["behaviorClose"] for r in actual.values())
    total_ms = sum(r.get("duration", 0) for r in raw.values())
    print(
        f"check {args.side}: {len(actual)} cases ({total_ms / 1000:.1f}s of case time); behavior: "
        + ", ".join(f"{k} {v}" for k, v in sorted(by_behavior.items()))
        + "; behaviorClose: "
        + ", ".join(f"{k} {v}" for k, v in sorted(by_close.items()))
    )

    bad = [
        (c, actual[c]) for c in sorted(actual, key=case_key)
        if actual[c]["behavior"] not in ACCEPTABLE or actual[c]["behaviorClose"] not in ACCEPTABLE
    ]
    for case_id, outcome in bad:
        print(f"  not passing  {case_id:<10} {fmt(outcome)}  (reports/{args.side}/{raw[case_id].get('reportfile', '')})")

    drift = []
    if expected is None and not args.update:
        print(f"check {args.side}: no expectation file {expected_path}; create it with --update")
        drift.append("missing expectations")
    elif expected is not None:
        for case_id in sorted(set(expected) | set(actual), key=case_key):
            want, got = expected.get(case_id), actual.get(case_id)
            if want == got:
                continue
            if got is None and was_skipped(case_id):
                continue
            if got is None:
                line = f"  - {case_id:<10} expected {fmt(want)}, missing from report"
            elif want is None:
                line = f"  + {case_id:<10} {fmt(got)}, not in expectations"
            else:
                line = f"  ~ {case_id:<10} expected {fmt(want)}, got {fmt(got)}"
            drift.append(line)
        if drift:
            print(f"check {args.side}: {len(drift)} case(s) differ from {os.path.relpath(expected_path)}:")
            for line in drift:
                print(line)

    if args.update:
        kept = {c: o for c, o in (expected or {}).items() if c not in actual and was_skipped(c)}
        write_expected(expected_path, args.side, {**kept, **actual})
        print(f"check {args.side}: wrote {len(actual)} expectations to {os.path.relpath(expected_path)}")
        drift = []

    if bad or drift:
        print(f"check {args.side}: FAIL ({len(bad)} not passing, {len(drift)} drifted)")
        return 1
    print(f"check {args.side}: ok, matches expectations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
