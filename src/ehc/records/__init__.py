"""Health records that follow the resident (issue 16): FHIR R4 resources published by hospitals, sealed at
rest, read under the resident's consent. ``docs/records.md`` is the chapter."""
