"""Offline exports of the control catalog, straight from the files (no API, no database):

    python -m services.controls oscal      # the catalog as an OSCAL catalog (JSON)
    python -m services.controls markdown   # the README's table of controls

``RELEASEGATE_CONTROLS`` and ``RELEASEGATE_POLICY`` name the files (the settings' defaults
otherwise); a bad catalog exits 2 with the file and the field.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

from services.controls import oscal
from services.controls.catalog import load_catalog, markdown_table
from services.settings import ConfigError, load_settings
from workflows.policy import ConfigFileError, load_policy

USAGE = "usage: python -m services.controls oscal|markdown"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("oscal", "markdown"):
        sys.stderr.write(USAGE + "\n")
        return 2
    try:
        settings = load_settings()
        catalog = load_catalog(settings.controls_path, load_policy(settings.policy_path))
    except (ConfigError, ConfigFileError) as exc:
        sys.stderr.write(f"releasegate: {exc}\n")
        return 2
    if argv[0] == "markdown":
        sys.stdout.write(markdown_table(catalog) + "\n")
    else:
        doc = oscal.as_json(oscal.catalog_document(catalog, at=datetime.now(UTC)))
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
