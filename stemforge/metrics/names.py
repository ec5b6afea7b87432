"""Names in a results tree, importable without pandas: ``stemforge evaluate`` checks method
names before its tables (and pandas) are needed. :mod:`stemforge.metrics.results` re-exports
them."""
from __future__ import annotations

import re

METHOD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")   # a method's name (a folder name)
RECORD = "stemforge-eval.json"       # written by stemforge evaluate beside the method trees
RECORD_FORMAT = "stemforge.eval"
