"""The baseline: merely read the CSV with the csv module (what any tool must at least do)."""

from __future__ import annotations

import csv
import sys

with open(sys.argv[1], newline="", encoding="utf-8") as fh:
    rows = sum(1 for _ in csv.reader(fh))
print(rows)
