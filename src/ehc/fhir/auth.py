"""Who may use the FHIR identity services."""

from __future__ import annotations

from ..mpi.auth import XrefReader

# Finding a patient in the index and reading their cross-references is the master index's lookup
# (mpi/auth.py, XrefReader): the hospital at work (its systems, window, doctor, nurse and admin staff)
# and the health commission's regional operators (their region) and platform admins. Which identifier
# systems and which people each reaches is mpi/xref.py's rule, applied in service.py. Residents use
# their own API; family doctors, cashiers and auditors have no FHIR door.
IdentityReader = XrefReader
