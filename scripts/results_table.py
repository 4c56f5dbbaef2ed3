"""Print a results table (markdown) from reports/metrics.json: methods x domains, mean ± std over seeds.

    python scripts/results_table.py det          # det.<method>.<domain>.mAP50
    python scripts/results_table.py seg          # seg.<method>.<domain>.mIoU

The README's result tables are pasted from this output, so they hold exactly the committed metrics.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SCORES = {"seg": "mIoU", "det": "mAP50"}


def table(metrics: dict, task: str) -> str:
    score = SCORES[task]
    methods = metrics[task]
    domains = list(next(iter(methods.values())))
    lines = ["| method | " + " | ".join(d.replace("_", " ") for d in domains) + " |",
             "|---" * (len(domains) + 1) + "|"]  # fmt: skip
    for method, by_domain in methods.items():
        cells = [f"{by_domain[d][score]:.1f} ± {by_domain[d][f'{score}_std']:.1f}" for d in domains]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    task = sys.argv[1] if len(sys.argv) > 1 else "seg"
    path = Path(sys.argv[2] if len(sys.argv) > 2 else "reports/metrics.json")
    print(table(json.loads(path.read_text()), task))
