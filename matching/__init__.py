"""chunkmatch's pure matching library: normalisation, codes, scorers and the catalog index.

Build a :class:`CatalogIndex` once per catalog version, then call
:meth:`CatalogIndex.match` on chunks of items (from several threads if wanted).
Each item goes through three stages, each on what the earlier left unmatched:

1. ``exact``: equal normalised text (:func:`normalise_text`);
2. ``code``: a model code (:func:`extract_codes`) found in exactly one catalog
   record, confirmed by text similarity;
3. ``fuzzy``: character-trigram TF-IDF retrieval, then a score (0..1) from
   n-gram and word cosines, RapidFuzz token scorers, code and number agreement,
   the lead over the next candidate and over the job's other items that want
   the same record (``CatalogIndex.peers``); accepted at ``DEFAULT_THRESHOLD``.

No I/O happens here. Modules: ``normalise``, ``codes``,
``vectors``, ``retrieval``, ``similarity``, ``scoring``, ``ranking``, ``peers``,
``index``, ``results``, ``records`` and ``exceptions``.

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
from matching.llm import (
    CachedDecision,
    DecideResult,
    DecisionCache,
    LLMDecider,
    LLMItemFailure,
    LLMUsage,
    RequestBudget,
    candidates_from_index,
)
from matching.llm_prompt import (
    Candidate,
    LLMDecision,
    build_batch_request,
    parse_batch_response,
    question_key,
)
from matching.normalise import normalise_text
from matching.records import compose_text
from matching.results import MatchResult
from matching.web_decision import choose_without_model
from matching.websearch import (
    SearchError,
    SearchProvider,
    SearchResult,
    SearxngSearch,
    WebCandidates,
    find_candidates,
    search_candidates,
)

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
    "CachedDecision",
    "Candidate",
    "DecideResult",
    "DecisionCache",
    "RequestBudget",
    "LLMDecider",
    "LLMDecision",
    "LLMItemFailure",
    "LLMUsage",
    "SearchError",
    "SearchProvider",
    "SearchResult",
    "SearxngSearch",
    "WebCandidates",
    "build_batch_request",
    "candidates_from_index",
    "choose_without_model",
    "find_candidates",
    "parse_batch_response",
    "question_key",
    "search_candidates",
]
