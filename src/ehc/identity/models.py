"""Identity owns no tables: it checks and normalises what residents type; the master index (``mpi``)
stores the results, sealed."""
