"""Manifest models, the committed JSON schema, and every example manifest."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from faxops.campaign import open_campaign
from faxops.errors import InputError
from faxops.manifest import campaign_schema, load_manifest
from faxops.providers import REGISTRY
from faxops.testing import SIMULATORS

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "schemas" / "campaign.schema.json"
EXAMPLES = sorted((REPO / "campaigns").glob("*.yaml"))


def test_committed_schema_is_current() -> None:
    committed = json.loads(SCHEMA.read_text())
    assert committed == campaign_schema(), "schemas/campaign.schema.json is stale: run `make schemas`"


#: credentials the example manifests reference (the simulators' accepted ones); real values never appear in them
EXAMPLE_ENV = {key: value for sim in SIMULATORS.values() for key, value in sim.good_env.items()}


def test_there_is_an_example_per_provider() -> None:
    assert {p.stem for p in EXAMPLES} >= {"example", *REGISTRY} - {"sandbox"}
    # the schema is generated from the registry too: every provider type is one of its choices
    assert set(REGISTRY) <= set(json.dumps(campaign_schema()).split('"')), "a provider is missing from the schema"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_load_validate_and_match_the_schema(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(key, value)
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=../schemas/campaign.schema.json")
    campaign = open_campaign(path, use_cache=False)
    assert campaign.documents
    data = YAML(typ="safe").load(text)
    jsonschema.validate(data, json.loads(SCHEMA.read_text()))


def test_schema_rejects_what_the_models_reject() -> None:
    schema = json.loads(SCHEMA.read_text())
    bad = {"campaign": {"name": "x", "colour": "red"}, "documents": ["a.pdf"], "recipients": {}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("campaign: {name: a}\ncampaign: {name: b}\ndocuments: [a.pdf]\nrecipients: {}\n")
    with pytest.raises(InputError) as info:
        load_manifest(path)
    assert info.value.problems[0].line == 2


def test_defaults_make_a_small_manifest_enough(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text('campaign: {name: tiny}\ndocuments: [a.pdf]\nrecipients: {inline: [{number: "+4930123456"}]}\n')
    model = load_manifest(path).model
    assert model.provider.type == "sandbox"
    assert model.retry.max_attempts == 3
    assert model.schedule.concurrency == 4


def test_values_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "campaign: {name: 'bad name!'}\n"
        "sender: {csid: 'a csid that is far too long for T.30', number: '+49'}\n"
        "documents: [a.pdf]\n"
        "recipients: {default_region: XX}\n"
        "schedule: {timezone: Mars/Olympus, windows: [{start: '17:00', end: '09:00'}]}\n"
        "provider: {type: sandbox, latency: fast}\n"
    )
    with pytest.raises(InputError) as info:
        load_manifest(path)
    fields = {p.field for p in info.value.problems}
    assert {"campaign.name", "sender.csid", "sender.number", "recipients.default_region", "provider.latency"} <= fields
    assert any(p.field and p.field.startswith("schedule") for p in info.value.problems)
    assert all(p.line is not None for p in info.value.problems)
