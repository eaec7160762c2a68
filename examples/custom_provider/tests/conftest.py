"""Make NightOps's provider contract importable: ``tests/providers/contract.py`` of a NightOps
checkout (this example's own repository by default, or ``$NIGHTOPS_CONTRACT_DIR``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

_default = Path(__file__).resolve().parents[3] / "tests" / "providers"
sys.path.insert(0, os.environ.get("NIGHTOPS_CONTRACT_DIR", str(_default)))
