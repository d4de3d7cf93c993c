"""FHIR identity services on the master index (issue 5): ``Patient/$match``, IHE PIXm ``Patient/$ihe-pix``,
IHE PDQm demographic search and ``Patient/{id}``, served under ``/fhir``.

Resources are built and checked with the ``fhir.resources`` R4B models (FHIR 4.3.0, wire-compatible with R4
4.0.1 for every resource served here; the CapabilityStatement declares 4.0.1, the version IHE PIXm and PDQm
profile). ``patient.py`` maps a person of the index to a FHIR Patient and back, ``service.py`` holds the
rules of each interaction, ``outcome.py`` turns errors into OperationOutcomes, ``capability.py`` says what is
supported, ``endpoints.py`` is the thin HTTP door. ``docs/master-index.md`` (section FHIR) documents it.
"""
