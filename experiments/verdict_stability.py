"""Do the sanity verdicts hold when the sample changes? Compare reports of different seeds.

Reads the `summary.json` of two or more `inception-lightning report` runs that differ only in
`--seed` (so in the images sampled and checked), and prints, per method and check, each run's
verdict, mean and interval; then the (method, check) pairs whose verdicts are opposite (one
pass, another fail) and the share of decided verdicts (pass or fail, not undecided).

    inception-lightning report --ckpt_path CKPT --data DIR --boxes_file DIR/boxes.json \\
        --per_class 4 --method "[gradcam, ...]" --seed 0 --out r0
    inception-lightning report ... --seed 1 --out r1
    python experiments/verdict_stability.py r0/summary.json r1/summary.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def verdicts(summary: Path) -> dict[tuple[str, str], dict]:
    """(method, check) -> the check's verdict record, from one report's summary.json."""
    record = json.loads(summary.read_text())
    return {
        (method["method"], check["name"]): check["verdict"]
        for method in record["methods"]
        for check in method.get("sanity", [])
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("summaries", nargs="+", type=Path, help="summary.json of each report")
    args = parser.parse_args()
    runs = [verdicts(path) for path in args.summaries]
    keys = list(dict.fromkeys(key for run in runs for key in run))
    opposite, decided, total = [], 0, 0
    print("| method | check | " + " | ".join(p.parent.name for p in args.summaries) + " |")
    print("| --- | --- |" + " --- |" * len(runs))
    for method, check in keys:
        cells, outcomes = [], set()
        for run in runs:
            verdict = run.get((method, check))
            if verdict is None:
                cells.append("-")
                continue
            outcomes.add(verdict["outcome"])
            total += 1
            decided += verdict["outcome"] != "undecided"
            cells.append(
                f"{verdict['outcome']} {verdict['mean']:.2f} "
                f"[{verdict['low']:.2f}, {verdict['high']:.2f}]"
            )
        if {"pass", "fail"} <= outcomes:
            opposite.append(f"{method} {check}")
        print(f"| {method} | {check} | " + " | ".join(cells) + " |")
    print(f"\nopposite verdicts: {len(opposite)} {opposite}")
    print(f"decided: {decided} of {total} ({decided / max(1, total):.0%})")


if __name__ == "__main__":
    main()
