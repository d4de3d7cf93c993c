"""The master index's public face: what other domains and the doors import (and nothing else of ``mpi``).

The rules live in the modules behind it, each with one concern:

- :mod:`.persons`: find or create the one person behind an identifier; merge and unmerge people (the
  merge contract for other domains is in its docstring), with the hooks ``on_merge`` / ``on_unmerge``;
- :mod:`.sealed`: the one place personal data is sealed and opened; reads for a caller
  (:func:`demographics`, :func:`identifiers_of`) are audited for anyone but the resident;
- :mod:`.xref`: cross-references (hospital numbers, social security, insurance, old cards), who may
  bind or look up which, and what each caller sees;
- :mod:`.matching`: real-time matching (blocking keys, Fellegi-Sunter scoring, screening of new
  registrations); :mod:`.review`: the review queue; :mod:`.linkage`: batch linkage of a hospital's list;
- :mod:`.bulk`: the batch form of :func:`create_person`, for the card importer;
- :mod:`.lookups`: the card look-ups the index needs, which the card registry provides
  (:func:`provide_cards`, called by ``ehc.wiring``).
"""

from __future__ import annotations

from . import review as _review
from .bulk import PersonBatch, PersonBatchBuilder, create_persons, held_identifiers, identifier_blind_index
from .linkage import LinkInputError, link_file
from .lookups import CardLookups, CardRef, card_of_person, provide_cards
from .matching import PURPOSE as MATCH_PURPOSE
from .matching import Candidate, Record, match
from .matching import evidence as match_evidence
from .matching.keys import blind_keys as match_blind_keys
from .matching.keys import people_sharing
from .matching.keys import rebuild as rebuild_match_keys
from .matching.names import parse as parse_name
from .matching.realtime import Outcome as MatchOutcome
from .matching.realtime import screen_registration, submit
from .models import MatchReview, Merge, MergeMove, Person
from .persons import (
    MERGE_PURPOSE,
    IdentifierTaken,
    MergeHook,
    UnmergeHook,
    add_identifier,
    create_person,
    find_by_phone,
    get_merge,
    ids_of,
    merge,
    on_identifier_bound,
    moves_of,
    on_merge,
    on_unmerge,
    record_move,
    remove_identifier,
    unmerge,
    update_demographics,
)
from .repository import find_by_identifier, people_in_regions, population_by_region, resolve
# The coarse fields in clear (sex, birth year, region, document type) for the statistics pipeline.
from .repository import identifier_holder_column, sealed_identifiers_column, statistics_profiles
from .sealed import demographics, identifiers_of, open_holder, open_read, seal_context, sealed_columns
from .values import Demographics, Identifier
from .xref import (
    IDENTIFIERS_PURPOSE,
    LOOKUP_PURPOSE,
    Bound,
    Scan,
    ScanVerifier,
    System,
    bind,
    check_bind,
    check_lookup,
    lookup,
    mask_value,
    may_see_person,
    merge_people,
    normalise,
    parse,
    parse_system,
    person_for_ref,
    scan_channel,
    unbind,
    undo_merge,
    view,
    visible_identifiers,
    visible_merge,
)

# The review queue, for the doors (the API, the staff pages).
REVIEW_STATUSES = _review.STATUSES
REVIEW_SOURCES = _review.SOURCES
REVIEW_FIELDS = _review.FIELDS
REVIEW_PURPOSE = _review.REVIEW_PURPOSE
ReviewSide = _review.Side
ReviewDecision = _review.Decision
list_reviews = _review.list_reviews
get_review = _review.get_review
review_sides = _review.sides
review_comparison = _review.comparison
accept_review = _review.accept
reject_review = _review.reject
enqueue_review = _review.enqueue


__all__ = [
    "IDENTIFIERS_PURPOSE", "LOOKUP_PURPOSE", "MATCH_PURPOSE", "MERGE_PURPOSE", "REVIEW_FIELDS", "REVIEW_PURPOSE",
    "REVIEW_SOURCES", "REVIEW_STATUSES",
    "Bound", "Candidate", "CardLookups", "CardRef", "Demographics", "Identifier", "IdentifierTaken", "LinkInputError",
    "MatchOutcome", "MatchReview", "Merge", "MergeHook", "MergeMove", "Person", "PersonBatch", "PersonBatchBuilder",
    "Record", "ReviewDecision", "ReviewSide", "Scan", "ScanVerifier", "System", "UnmergeHook",
    "accept_review", "add_identifier", "bind", "card_of_person", "check_bind", "check_lookup", "create_person", "create_persons",
    "demographics", "enqueue_review", "find_by_identifier", "find_by_phone", "get_merge", "get_review",
    "identifier_holder_column", "open_holder", "open_read", "sealed_identifiers_column",
    "held_identifiers", "identifier_blind_index", "identifiers_of", "ids_of", "link_file", "list_reviews", "lookup",
    "mask_value", "match", "match_blind_keys", "may_see_person", "merge", "merge_people", "moves_of", "normalise",
    "on_identifier_bound", "on_merge", "on_unmerge", "parse", "parse_name", "parse_system", "people_sharing", "people_in_regions", "person_for_ref", "population_by_region",
    "provide_cards", "rebuild_match_keys", "record_move", "reject_review", "remove_identifier", "resolve",
    "review_comparison", "review_sides", "scan_channel", "screen_registration", "seal_context", "submit", "unbind",
    "undo_merge", "unmerge", "update_demographics", "view", "visible_identifiers", "visible_merge",
    "statistics_profiles",
]
