"""The pull-request comment of a large campaign: `plan --format markdown` at 1,000,000 recipients.

Usage: ``python bench/markdown_plan.py [SIZE]`` (default 1,000,000; `make bench` runs it). Checks the
comment's bound (60,000 characters, whatever the size) on the real CLI and prints its length, time and
peak memory beside the text plan's.
"""

from __future__ import annotations

import shutil
import sys

from run import PY, WORK, generate, measure  # bench/ is on the path when this file runs as a script

from faxops.render_markdown import MAX_CHARS


def main(argv: list[str]) -> int:
    size = int(argv[0]) if argv else 1_000_000
    directory = WORK / f"markdown-{size}"
    shutil.rmtree(directory, ignore_errors=True)
    manifest = generate(directory, size)
    markdown = measure(
        [PY, "-m", "faxops", "plan", str(manifest), "--format", "markdown", "--refresh=false"], directory
    )
    text = str(markdown.pop("stdout"))
    assert len(text) <= MAX_CHARS, f"the comment is {len(text):,} characters, over {MAX_CHARS:,}"
    assert f"**{size:,} to send**" in text, text[:2000]
    print("| recipients | markdown plan | characters | peak RSS |\n|---|---|---|---|")
    print(
        f"| {size:,} | {markdown['seconds']:.1f} s | {len(text):,} (bound {MAX_CHARS:,}) | {markdown['peak_mib']} MiB |"
    )
    shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
