#!/usr/bin/env python3
"""Checks database files against the published JSON Schema (results/schema/ktune.db-1.schema.json).

Usage: check_db.py [FILE_OR_DIR ...]   (default: results/db)
Exit status 1 when a file does not validate, naming the file and the failing path.
"""
import json
import pathlib
import sys

import jsonschema

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "results" / "schema" / "ktune.db-1.schema.json"


def files(args):
    for a in args or [str(ROOT / "results" / "db")]:
        p = pathlib.Path(a)
        if p.is_dir():
            yield from sorted(p.glob("*.json"))
        else:
            yield p


def main():
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    checked, bad = 0, 0
    for f in files(sys.argv[1:]):
        doc = json.loads(f.read_text())
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        for e in errors[:5]:
            path = "/".join(str(x) for x in e.absolute_path)
            print(f"{f}: at /{path}: {e.message}", file=sys.stderr)
        bad += bool(errors)
        checked += 1
    print(f"check_db: {checked} file(s) checked against {SCHEMA.name}, {bad} invalid")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
