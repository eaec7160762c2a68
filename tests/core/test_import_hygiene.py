"""The core must stay pure: importing it may load only the allowed standard modules.

Checked in a fresh interpreter (like click's test_imports), so modules loaded by pytest
or other tests cannot hide a bad import. import-linter checks the static graph in CI; this
checks what really happens at run time.
"""

from __future__ import annotations

import json
import subprocess
import sys

# attrs itself loads threading (for its repr recursion guard) and inspect; those are
# attrs's business, so they are loaded first and not counted against the core.
SCRIPT = """
import json, sys
import attrs
before = set(sys.modules)
import nightops_core
import nightops_core.testing
print(json.dumps(sorted(set(sys.modules) - before)))
"""

# Top-level modules the core (with attrs) may pull in. Nothing that opens files, sockets,
# processes or threads for its own purposes, and no cloud or chat SDK.
ALLOWED = {
    "nightops_core",
    "attr",
    "attrs",
    "abc",
    "collections",
    "copy",
    "copyreg",
    "dataclasses",
    "datetime",
    "_datetime",
    "decimal",
    "_decimal",
    "_pydecimal",
    "difflib",
    "enum",
    "fnmatch",
    "functools",
    "hashlib",
    "_hashlib",
    "_blake2",
    "_sha2",
    "_sha256",
    "_sha512",
    "heapq",
    "_heapq",
    "inspect",
    "ast",
    "_ast",
    "dis",
    "opcode",
    "_opcode",
    "itertools",
    "json",
    "_json",
    "keyword",
    "linecache",
    "tokenize",
    "token",
    "math",
    "numbers",
    "operator",
    "re",
    "_sre",
    "sre_compile",
    "sre_parse",
    "sre_constants",
    "string",
    "_string",
    "types",
    "typing",
    "typing_extensions",
    "weakref",
    "_weakrefset",
    "zoneinfo",
    "_zoneinfo",
    "bisect",
    "_bisect",
    "calendar",
    "locale",
    "_locale",
    "contextvars",
    "_contextvars",
    "textwrap",
    "reprlib",
    "struct",
    "_struct",
    "binascii",
    "importlib",
    "uuid",
    "_uuid",
    "random",
    "_random",
    "_sha1",
    "_md5",
    "_sha3",
    "annotationlib",
    "warnings",
    "_warnings",
    "importlib_resources",
    "sysconfig",
    "_sysconfigdata",
    "platform",
    "tzdata",
    "stat",
    "_stat",
    "base64",
    "unicodedata",
    "traceback",
    "_collections_abc",
    "signal",
    "errno",
    "email",
    "select",
    "selectors",
    "_frozen_importlib",
    "_frozen_importlib_external",
}
# The point of the test: never these (nor anything else not allowed above).
FORBIDDEN = {
    "socket",
    "ssl",
    "http",
    "urllib",
    "sqlite3",
    "_sqlite3",
    "asyncio",
    "subprocess",
    "threading",
    "concurrent",
    "multiprocessing",
    "boto3",
    "botocore",
    "google",
    "azure",
    "slack_sdk",
    "slack_bolt",
    "psycopg",
    "logging",
    "nightops",
    "nightops_providers",
    "nightops_slack",
}


def test_core_imports_nothing_but_pure_modules() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True
    )
    loaded = {name.partition(".")[0] for name in json.loads(result.stdout)}
    assert not loaded & FORBIDDEN, f"the core imported I/O or SDK modules: {loaded & FORBIDDEN}"
    # zoneinfo reads sysconfig; its data module is named after the platform.
    unexpected = {m for m in loaded - ALLOWED - FORBIDDEN if not m.startswith("_sysconfigdata")}
    assert not unexpected, (
        f"the core imported modules outside the allow-list: {sorted(unexpected)}; if one is "
        "pure, add it to ALLOWED with care"
    )
