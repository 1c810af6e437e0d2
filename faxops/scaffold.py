"""``faxops init DIR``: a campaign folder a person can start from, and the CI pipelines it is reviewed with.

The folder holds a manifest (with the schema line editors use for completion), an empty recipient list
with the header the manifest reads, a suppression list, a one-page placeholder letter, a ``.gitignore``
that keeps local state, reports and lock files out of Git, and the CI pipeline for the chosen host.
The pipelines are the same templates as ``examples/`` in the repository (a test keeps them equal).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from pypdf import PdfWriter

from faxops.errors import InputError
from faxops.manifest import SCHEMA_URL
from faxops.providers import REGISTRY

CI_HOSTS = {"github": "github-actions.yml", "gitlab": "gitlab-ci.yml"}
CI_PATHS = {"github": ".github/workflows/faxops.yml", "gitlab": ".gitlab-ci.yml"}

GITIGNORE = """\
# What a campaign folder keeps out of Git.
# In Git: the manifests, recipient and suppression lists, documents, and each NAME.lock.json (the record
# of every fax sent: review its diff, never lose it) unless the state lives in PostgreSQL.
.faxops/
*.journal
.*.state-lock
*.inbox
*.plan.json
reports/
"""


def ci_pipeline(host: str, manifest: str) -> str:
    """The CI pipeline for ``host`` (github, gitlab) running the campaign at ``manifest`` (repository path)."""
    if host not in CI_HOSTS:
        raise InputError(f"no CI template for {host!r} (there are: {', '.join(sorted(CI_HOSTS))})")
    text = (resources.files("faxops") / "templates" / CI_HOSTS[host]).read_text(encoding="utf-8")
    folder = manifest.rsplit("/", 1)[0] + "/" if "/" in manifest else ""
    return text.replace("__MANIFEST__", manifest).replace("__DIR__", folder)


def init_campaign(directory: Path, *, provider: str = "sandbox", ci: str | None = "github") -> list[Path]:
    """Create the campaign folder; refuse (``InputError``) to overwrite any file. Returns the files written."""
    if provider not in REGISTRY:
        raise InputError(f"unknown provider type {provider!r} (there are: {', '.join(sorted(REGISTRY))})")
    name = _campaign_name(directory)
    files: dict[str, str | bytes] = {
        "campaign.yaml": manifest_text(name, provider),
        "recipients.csv": "number,name\n",
        "suppress.csv": "number,reason\n",
        ".gitignore": GITIGNORE,
        "documents/letter.pdf": _placeholder_pdf(),
    }
    if ci is not None:
        files[CI_PATHS.get(ci, ci)] = ci_pipeline(ci, "campaign.yaml")
    existing = [rel for rel in files if (directory / rel).exists()]
    if existing:
        raise InputError(
            f"{directory}: {', '.join(existing)} already exist(s); faxops init never overwrites a file",
            hint="choose a new folder",
        )
    written = []
    for rel, content in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def manifest_text(name: str, provider: str) -> str:
    """The starting manifest: every required key, the provider's required settings, comments saying what next."""
    return f"""\
# yaml-language-server: $schema={SCHEMA_URL}
#
# A new fax campaign. Next: put the letter in documents/, the recipients in recipients.csv, then
#   faxops validate campaign.yaml && faxops plan campaign.yaml
version: 1

campaign:
  name: {name}
  purpose: transactional # or marketing (needs an opt-out on the first page, see the README)

provider:
{_provider_block(provider)}
sender:
  header: "{name}"

documents:
  - documents/letter.pdf

recipients:
  default_region: DE # for national numbers such as 030 90182000
  files:
    - path: recipients.csv
      columns: {{number: number, name: name}}

suppress:
  - path: suppress.csv
    reason: asked not to be faxed

retry:
  max_attempts: 3
"""


def _provider_block(provider: str) -> str:
    """``type:`` and every required setting; secrets as ``${env:...}`` references, never values."""
    model = REGISTRY[provider].settings_model
    lines = [f"  type: {provider}"]
    if provider == "sandbox":
        lines[0] += " # no account, no network: every fax is written to .faxops/sandbox/sent.jsonl"
    for name, field in model.model_fields.items():
        if name == "type" or not field.is_required():
            continue
        patterns = [str(getattr(m, "pattern", "") or "") for m in field.metadata]
        about = f" # {field.description}" if field.description else ""
        if any("$" in p for p in patterns):  # a SecretRef: the manifest names where the secret is
            lines.append(f"  {name}: ${{env:{provider.upper()}_{name.upper()}}}")
        elif any(p.startswith("^https?") for p in patterns):
            lines.append(f"  {name}: https://CHANGE-ME.example{about}")
        elif field.annotation is int:
            lines.append(f"  {name}: 1 # CHANGE-ME:{about[2:] or ' required'}")
        else:
            lines.append(f"  {name}: CHANGE-ME{about}")
    return "\n".join(lines) + "\n"


def _campaign_name(directory: Path) -> str:
    raw = directory.resolve().name.lower()
    name = "".join(c if c.isalnum() else "-" for c in raw).strip("-")
    return name[:64] or "my-campaign"


def _placeholder_pdf() -> bytes:
    import io

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)  # A4 in points
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def relative_to_cwd(path: Path) -> str:
    """A path as a person typed it from here (for the hints ``init`` prints)."""
    return os.path.relpath(path)
