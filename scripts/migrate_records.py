#!/usr/bin/env python3
"""Migrates run records made before issue 30 (`run.json`, `audit.json` under a records folder
`<dir>/<ds>/<tag>/`) to the fields step 7 reads from a record alone, in place and atomically:

* `config`, `provenance`: "unknown" (those runs recorded neither the resolved configuration nor
  the code version and input checksums);
* `shield` of a shielded run: τ from its own tag when it is a `tau<τ>` arm (the tag set it), else
  "unknown"; k "unknown";
* absolute paths of the machine that made them (`audit.json` `checkpoint`, `run.json` `start`)
  made relative to the project root (the part from `checkpoints/` on).

A field a record already has is left as it is, so a second run changes nothing.
    scripts/migrate_records.py experiments/superseded/records
"""
import json
import os
import re
import sys
import tempfile

UNKNOWN = "unknown"


def relative(text):
    """An absolute path (or a sentence ending in one) cut to the part from checkpoints/ on."""
    return re.sub(r"/\S*?/(checkpoints/)", r"\1", text)


def migrate_run(run, tag):
    run.setdefault("config", UNKNOWN)
    run.setdefault("provenance", UNKNOWN)
    if run.get("coupled") == "shielded" and "shield" not in run:
        m = re.match(r"^tau([0-9.]+?)(_|$)", tag)
        run["shield"] = {"tau": float(m.group(1)) if m else UNKNOWN, "k": UNKNOWN}
    if isinstance(run.get("start"), str):
        run["start"] = relative(run["start"])
    return run


def migrate_audit(audit):
    audit.setdefault("config", UNKNOWN)
    audit.setdefault("provenance", UNKNOWN)
    if isinstance(audit.get("checkpoint"), str):
        audit["checkpoint"] = relative(audit["checkpoint"])
    return audit


def rewrite(path, change):
    with open(path) as f:
        before = f.read()
    after = json.dumps(change(json.loads(before)), indent=2, ensure_ascii=False)
    if after == before:
        return False
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".migrate.")
    with os.fdopen(fd, "w") as f:
        f.write(after)
    os.replace(tmp, path)
    return True


def main(root):
    changed = 0
    for ds in sorted(os.listdir(root)):
        for tag in sorted(os.listdir(os.path.join(root, ds))):
            d = os.path.join(root, ds, tag)
            if os.path.isfile(os.path.join(d, "run.json")):
                changed += rewrite(os.path.join(d, "run.json"), lambda r: migrate_run(r, tag))
            if os.path.isfile(os.path.join(d, "audit.json")):
                changed += rewrite(os.path.join(d, "audit.json"), migrate_audit)
    print(f"{changed} file(s) migrated under {root}")


if __name__ == "__main__":
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        sys.exit("usage: scripts/migrate_records.py RECORDS_DIR (e.g. experiments/superseded/records)")
    main(sys.argv[1])
