"""chunkmatch's pure matching library: normalisation, codes, scorers and the catalog index.

>>> from matching import CatalogIndex
>>> index = CatalogIndex.build([("b1", "Linksys EtherFast EZXS88W Ethernet Switch")])
>>> index.match([("a1", "Linksys EZXS88W 8-port switch")])[0].catalog_id
'b1'
"""

from __future__ import annotations

from matching.codes import extract_codes, extract_numbers, is_model_code
from matching.exceptions import (
    DuplicateCatalogIdError,
    InvalidArgumentError,
    InvalidThresholdError,
    MatchingError,
)
from matching.index import DEFAULT_CANDIDATES, DEFAULT_THRESHOLD, CatalogIndex
from matching.normalise import normalise_text
from matching.records import compose_text
from matching.results import MatchResult

__all__ = [
    "DEFAULT_CANDIDATES",
    "DEFAULT_THRESHOLD",
    "CatalogIndex",
    "DuplicateCatalogIdError",
    "InvalidArgumentError",
    "InvalidThresholdError",
    "MatchResult",
    "MatchingError",
    "compose_text",
    "extract_codes",
    "extract_numbers",
    "is_model_code",
    "normalise_text",
]
