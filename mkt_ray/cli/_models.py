"""`mkt-ray models list|show|promote`: the model registry from the command line.

The registry is `registry.uri` from the settings (default `<data_dir>/models`), or `--registry URI`.
`list [TENANT]` prints one line per version (promoted marked `*`, with AUC and journeys), `show TENANT
VERSION` the version's entry as JSON, `promote TENANT VERSION` moves the tenant's pointer: running ingest
members install the version's channel values within `registry.poll_s` seconds, without a restart.
"""

from __future__ import annotations

import argparse
import json

from mkt_ray.registry import ModelRegistry
from mkt_ray.settings import load_settings


def add_models_parser(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser("models", help="list, show and promote trained attribution models")
    models.add_argument("--registry", metavar="URI", help="registry folder or s3:// URI (default: registry.uri)")
    actions = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="versions per tenant, newest last; * = promoted")
    listing.add_argument("tenant", nargs="?", help="only this tenant")
    for name, text in (("show", "print a version's entry (JSON)"), ("promote", "make a version the one shards use")):
        action = actions.add_parser(name, help=text)
        action.add_argument("tenant")
        action.add_argument("version")


def run_models(args: argparse.Namespace) -> int:
    registry = ModelRegistry(args.registry or load_settings(args.config).registry_uri)
    if args.action == "show":
        print(json.dumps(registry.entry(args.tenant, args.version), indent=1, sort_keys=True))
    elif args.action == "promote":
        print(json.dumps(registry.promote(args.tenant, args.version), sort_keys=True))
    else:
        for tenant in [args.tenant] if args.tenant else registry.tenants():
            promoted = registry.promoted(tenant)
            for version in registry.versions(tenant):
                entry = registry.entry(tenant, version)
                auc = entry.get("metrics", {}).get("auc")
                journeys = entry.get("journeys", {}).get("total")
                data = entry.get("data_range", {})
                print(f"{'*' if version == promoted else ' '} {tenant} {version}  auc={auc if auc is None else round(auc, 4)}"
                      f"  journeys={journeys}  dates={data.get('since')}..{data.get('until')}")
    return 0
