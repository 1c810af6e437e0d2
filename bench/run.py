"""faxops benchmarks: plan and apply at 100,000 and 1,000,000 recipients. Run with `make bench`.

Every phase runs as its own process so that its wall time and peak memory (max RSS) are its own.
Figures are printed as a Markdown table and written to bench/results.json; bench/README.md keeps the
ones we report. Usage: ``python bench/run.py [SIZE ...]`` (default: 100000 1000000).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
PY = sys.executable

MANIFEST = """\
campaign: {{name: bench-{size}}}
provider: {{type: sandbox}}
documents: [letter.pdf]
recipients:
  default_region: DE
  files: [{{path: recipients.csv, columns: {{number: fax, name: company, fields: [account]}}}}]
schedule: {{concurrency: {concurrency}}}
"""


def generate(directory: Path, size: int) -> Path:
    """A list like real ones: two thirds international with spaces, one third national (region DE)."""
    directory.mkdir(parents=True, exist_ok=True)
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    with (directory / "letter.pdf").open("wb") as fh:
        writer.write(fh)
    with (directory / "recipients.csv").open("w", encoding="utf-8") as fh:
        fh.write("fax,company,account\n")
        for i in range(size):
            subscriber = 20_000_000 + i  # Berlin numbers, all valid and distinct
            if i % 3 == 2:
                fh.write(f"030 {subscriber},Customer {i},A{i:07d}\n")
            else:
                fh.write(f"+49 30 {subscriber},Customer {i},A{i:07d}\n")
    manifest = directory / "campaign.yaml"
    manifest.write_text(MANIFEST.format(size=size, concurrency=8))
    return manifest


def measure(argv: list[str], cwd: Path) -> dict[str, Any]:
    """Wall time and peak RSS of one child process (``wait4`` gives that child's own rusage)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code  # already reaped
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if code not in (0, 2):
        raise SystemExit(f"{' '.join(argv)} failed ({code}):\n{stderr[-3000:]}")
    return {"seconds": round(elapsed, 3), "peak_mib": round(usage.ru_maxrss / 1024, 1), "stdout": stdout}


def bench_size(size: int) -> dict[str, Any]:
    directory = WORK / str(size)
    shutil.rmtree(directory, ignore_errors=True)
    manifest = generate(directory, size)
    faxops = [PY, "-m", "faxops"]
    results: dict[str, Any] = {"size": size}
    results["csv_read"] = measure([PY, str(HERE / "csv_read.py"), "recipients.csv"], directory)
    results["plan_cold"] = measure([*faxops, "plan", manifest.name], directory)
    results["apply"] = measure([PY, str(HERE / "apply_harness.py"), manifest.name], directory)
    results["apply"].update(json.loads(results["apply"].pop("stdout")))
    results["plan_warm"] = measure([*faxops, "plan", manifest.name, "--detailed-exitcode"], directory)
    results["status"] = measure([*faxops, "status", manifest.name], directory)
    for phase in ("csv_read", "plan_cold", "plan_warm", "status"):
        results[phase].pop("stdout", None)
    lock = directory / "campaign.lock.json"
    results["lockfile_bytes"] = lock.stat().st_size
    shutil.rmtree(directory, ignore_errors=True)
    return results


def table(all_results: list[dict[str, Any]]) -> str:
    lines = [
        "| recipients | CSV read | cold plan | warm plan | warm ÷ CSV | apply (sandbox) | state bytes/send | "
        "lockfile | peak RSS (plan cold / apply / plan warm) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in all_results:
        csv_s, cold, warm = r["csv_read"]["seconds"], r["plan_cold"]["seconds"], r["plan_warm"]["seconds"]
        apply = r["apply"]
        lines.append(
            f"| {r['size']:,} | {csv_s:.2f} s | {cold:.1f} s | {warm:.1f} s | {warm / csv_s:.1f}× | "
            f"{apply['sent_per_second']:,.0f}/s ({apply['sent']:,} in {apply['apply_seconds']:.0f} s) | "
            f"{apply['journal_bytes_per_send']:.0f} | {r['lockfile_bytes'] / 1e6:.0f} MB | "
            f"{r['plan_cold']['peak_mib']} / {r['apply']['peak_mib']} / {r['plan_warm']['peak_mib']} MiB |"
        )
    return "\n".join(lines)


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [100_000, 1_000_000]
    print(f"faxops bench on {platform.node()}: {os.cpu_count()} CPU, Python {platform.python_version()}", flush=True)
    all_results = []
    for size in sizes:
        print(f"… {size:,} recipients", flush=True)
        all_results.append(bench_size(size))
        print(table(all_results[-1:]), flush=True)
    (HERE / "results.json").write_text(json.dumps(all_results, indent=2) + "\n")
    print()
    print(table(all_results))


if __name__ == "__main__":
    main()
