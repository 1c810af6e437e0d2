"""faxops benchmarks: every phase of a campaign at 100,000 and 1,000,000 recipients. Run with `make bench`.

Every phase runs as its own process so that its wall time and peak memory (max RSS) are its own.
Figures are printed as Markdown tables and written to bench/results.json; bench/README.md keeps the
ones we report. Usage: ``python bench/run.py [SIZE ...]`` (default: 100000 1000000, or the sizes in
``$FAXOPS_BENCH_SIZES``, e.g. ``FAXOPS_BENCH_SIZES=20000 make bench`` for a quick run).

Targets are ratios measured in the same run where they can be (the warm plan against a bare csv-module
read of the same file), so that a busy machine slows both sides alike.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
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

LATENCY_MANIFEST = """\
campaign: {{name: bench-latency}}
provider: {{type: faxplus, base_url: "{url}/v3", token: "${{env:FAXPLUS_TOKEN}}"}}
sender: {{csid: FAXOPS, number: '+493012340000'}}
documents: [letter.pdf]
recipients:
  default_region: DE
  files: [{{path: recipients.csv, columns: {{number: fax, name: company, fields: [account]}}}}]
schedule: {{concurrency: {concurrency}, batch_size: 1}}
"""
LATENCY = 0.2
LATENCY_CONCURRENCY = 16
LATENCY_RECIPIENTS = 2_400  # 30 s at the ideal 80/s


def number(i: int) -> str:
    """The i-th number of a mixed list, as people write them, all valid and distinct.

    40 % Berlin numbers in international form, 30 % German numbers in national form across several area
    codes (read with ``default_region: DE``), 30 % French numbers in international form with spaces.
    """
    kind = i % 10
    if kind < 4:
        return f"+49 30 {20_000_000 + i}"
    if kind < 7:
        area = ("030", "089", "040", "0221", "069")[i % 5]
        subscriber = 2_000_000 + i // 10 * 3 + (kind - 4)
        return f"{area} {subscriber}" if area != "030" else f"{area} {20_000_000 + subscriber}"
    digits = f"{142_000_000 + i:09d}"
    return f"+33 {digits[0]} {digits[1:3]} {digits[3:5]} {digits[5:7]} {digits[7:9]}"


def generate(directory: Path, size: int, manifest_text: str | None = None) -> Path:
    """A campaign directory: a one-page PDF, a mixed-country CSV of ``size`` rows, and the manifest
    (the sandbox one of ``MANIFEST`` unless ``manifest_text`` is given)."""
    directory.mkdir(parents=True, exist_ok=True)
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    with (directory / "letter.pdf").open("wb") as fh:
        writer.write(fh)
    with (directory / "recipients.csv").open("w", encoding="utf-8") as fh:
        fh.write("fax,company,account\n")
        for i in range(size):
            fh.write(f"{number(i)},Customer {i},A{i:07d}\n")
    manifest = directory / "campaign.yaml"
    manifest.write_text(manifest_text or MANIFEST.format(size=size, concurrency=8))
    return manifest


def measure(argv: list[str], cwd: Path, *, keep_stdout: bool = True) -> dict[str, Any]:
    """Wall time and peak RSS of one child process (``wait4`` gives that child's own rusage), and its
    output as ``stdout`` unless ``keep_stdout`` is false (a report of a million rows goes to /dev/null)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        target = out if keep_stdout else subprocess.DEVNULL
        proc = subprocess.Popen(argv, cwd=cwd, stdout=target, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code  # already reaped
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if code not in (0, 2):
        raise SystemExit(f"{' '.join(argv)} failed ({code}):\n{stderr[-3000:]}")
    result: dict[str, Any] = {"seconds": round(elapsed, 3), "peak_mib": round(usage.ru_maxrss / 1024, 1)}
    if keep_stdout:
        result["stdout"] = stdout
    return result


def bench_size(size: int) -> dict[str, Any]:
    directory = WORK / str(size)
    shutil.rmtree(directory, ignore_errors=True)
    manifest = generate(directory, size).name
    faxops = [PY, "-m", "faxops"]
    results: dict[str, Any] = {"size": size}
    quiet = {"keep_stdout": False}
    results["csv_read"] = measure([PY, str(HERE / "csv_read.py"), "recipients.csv"], directory, **quiet)
    results["plan_cold"] = measure([*faxops, "plan", manifest], directory, **quiet)
    results["apply"] = _harness(manifest, directory)
    results["plan_warm"] = measure([*faxops, "plan", manifest, "--detailed-exitcode"], directory, **quiet)
    results["csv_read_again"] = measure([PY, str(HERE / "csv_read.py"), "recipients.csv"], directory, **quiet)
    results["status"] = measure([*faxops, "status", manifest], directory, **quiet)
    results["report_json"] = measure([*faxops, "report", manifest, "--format", "json"], directory, **quiet)
    results["report_csv"] = measure([*faxops, "report", manifest, "--format", "csv"], directory, **quiet)
    results["lockfile_bytes"] = (directory / "campaign.lock.json").stat().st_size
    shutil.rmtree(directory, ignore_errors=True)
    return results


def _harness(manifest: str, directory: Path) -> dict[str, Any]:
    """``bench/apply_harness.py``: its figures (JSON on stdout) beside its time and peak memory."""
    result = measure([PY, str(HERE / "apply_harness.py"), manifest], directory)
    result.update(json.loads(result.pop("stdout")))
    return result


def bench_latency() -> dict[str, Any]:
    """Apply through an HTTP simulator that takes LATENCY per call: how close to concurrency ÷ latency?"""
    directory = WORK / "latency"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    sim = subprocess.Popen(
        [PY, str(HERE / "sim_server.py"), "faxplus", str(LATENCY)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert sim.stdout is not None
        url = sim.stdout.readline().strip()
        text = LATENCY_MANIFEST.format(url=url, concurrency=LATENCY_CONCURRENCY)
        manifest = generate(directory, LATENCY_RECIPIENTS, text).name
        env = {**os.environ, "FAXPLUS_TOKEN": "secret"}
        os.environ.update(env)
        result = _harness(manifest, directory)
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(10)
    ideal = LATENCY_CONCURRENCY / LATENCY
    result.update(latency=LATENCY, concurrency=LATENCY_CONCURRENCY, ideal_per_second=ideal)
    result["efficiency"] = round(result["sent_per_second"] / ideal, 3)
    shutil.rmtree(directory, ignore_errors=True)
    return result


def table(all_results: list[dict[str, Any]]) -> str:
    lines = [
        "| recipients | CSV read | cold plan | warm plan | warm ÷ CSV | apply (sandbox) | fold | status | "
        "report JSON / CSV | state bytes/send | lockfile | peak RSS (cold / apply / warm / status / JSON / CSV) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in all_results:
        csv_s = min(r["csv_read"]["seconds"], r["csv_read_again"]["seconds"])
        cold, warm = r["plan_cold"]["seconds"], r["plan_warm"]["seconds"]
        apply = r["apply"]
        phases = ("plan_cold", "apply", "plan_warm", "status", "report_json", "report_csv")
        peaks = " / ".join(f"{r[p]['peak_mib']:.0f}" for p in phases)
        lines.append(
            f"| {r['size']:,} | {csv_s:.2f} s | {cold:.1f} s | {warm:.1f} s | {warm / csv_s:.1f}× | "
            f"{apply['sent_per_second']:,.0f}/s ({apply['sent']:,} in {apply['apply_seconds']:.0f} s) | "
            f"{apply['fold_seconds']:.1f} s | {r['status']['seconds']:.1f} s | "
            f"{r['report_json']['seconds']:.1f} / {r['report_csv']['seconds']:.1f} s | "
            f"{apply['journal_bytes_per_send']:.0f} | {r['lockfile_bytes'] / 1e6:.0f} MB | {peaks} MiB |"
        )
    return "\n".join(lines)


def latency_line(r: dict[str, Any]) -> str:
    return (
        f"apply over HTTP at {r['latency'] * 1000:.0f} ms a call, concurrency {r['concurrency']}: "
        f"{r['sent_per_second']:.1f}/s of an ideal {r['ideal_per_second']:.0f}/s = {r['efficiency']:.1%} "
        f"({r['sent']:,} in {r['apply_seconds']:.1f} s)"
    )


def compile_faxops() -> None:
    """Compile faxops' modules once, as installing the package does (pip writes its ``.pyc`` files).

    With ``PYTHONDONTWRITEBYTECODE`` set, or from a checkout never imported before, every process would
    otherwise compile faxops again (~0.2 s of each command), which no installed copy pays."""
    import faxops

    subprocess.run([PY, "-m", "compileall", "-q", str(Path(faxops.__file__).parent)], check=True)


def main() -> None:
    named = sys.argv[1:] or os.environ.get("FAXOPS_BENCH_SIZES", "").split()
    sizes = [int(a) for a in named] or [100_000, 1_000_000]
    print(f"faxops bench on {platform.node()}: {os.cpu_count()} CPU, Python {platform.python_version()}", flush=True)
    compile_faxops()
    latency = bench_latency()
    print(latency_line(latency), flush=True)
    all_results = []
    for size in sizes:
        print(f"… {size:,} recipients", flush=True)
        all_results.append(bench_size(size))
        print(table(all_results[-1:]), flush=True)
    (HERE / "results.json").write_text(json.dumps({"latency": latency, "sizes": all_results}, indent=2) + "\n")
    print()
    print(latency_line(latency))
    print(table(all_results))


if __name__ == "__main__":
    main()
