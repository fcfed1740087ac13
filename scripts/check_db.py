#!/usr/bin/env python3
"""Checks database files against the published JSON Schema of their version
(results/schema/ktune.db-2.schema.json; files still tagged ktune.db/1 against
results/schema/ktune.db-1.schema.json).

Usage: check_db.py [FILE_OR_DIR ...]   (default: results/db)
Exit status 1 when a file does not validate, naming the file and the failing path.
"""
import json
import pathlib
import sys

import jsonschema

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCHEMAS = {
    "ktune.db/2": ROOT / "results" / "schema" / "ktune.db-2.schema.json",
    "ktune.db/1": ROOT / "results" / "schema" / "ktune.db-1.schema.json",
}


def files(args):
    for a in args or [str(ROOT / "results" / "db")]:
        p = pathlib.Path(a)
        if p.is_dir():
            yield from sorted(p.glob("*.json"))
        else:
            yield p


def main():
    validators = {
        tag: jsonschema.Draft202012Validator(json.loads(path.read_text()))
        for tag, path in SCHEMAS.items()
    }
    checked, bad = 0, 0
    for f in files(sys.argv[1:]):
        doc = json.loads(f.read_text())
        tag = doc.get("schema") if isinstance(doc, dict) else None
        validator = validators.get(tag, validators["ktune.db/2"])
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        for e in errors[:5]:
            path = "/".join(str(x) for x in e.absolute_path)
            print(f"{f}: at /{path}: {e.message}", file=sys.stderr)
        bad += bool(errors)
        checked += 1
    print(f"check_db: {checked} file(s) checked against the schema of their version, {bad} invalid")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
