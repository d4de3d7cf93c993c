"""Real-time matching against the master index: names (:mod:`.names`), blocking keys (:mod:`.keys`),
the Fellegi-Sunter matcher and its model file ``fs_model.json`` (:mod:`.matcher`, :mod:`.estimate`),
and what a hospital's submission or a new registration sets off (:mod:`.realtime`).

The matcher's names are re-exported here; :mod:`.realtime` is not (it builds on the review queue,
which builds on the matcher), so importing ``mpi.matching`` stays below ``mpi.persons``.
"""

from .matcher import (
    CANDIDATE_LIMIT,
    FIELDS,
    GRADES,
    LEVELS,
    MODEL_FILE,
    PURPOSE,
    Candidate,
    Model,
    Record,
    Side,
    compare,
    default_model,
    match,
    score_pair,
    side_of,
)

__all__ = ["CANDIDATE_LIMIT", "FIELDS", "GRADES", "LEVELS", "MODEL_FILE", "PURPOSE", "Candidate", "Model", "Record",
           "Side", "compare", "default_model", "match", "score_pair", "side_of"]
