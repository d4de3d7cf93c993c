"""Identity has no HTTP endpoints: it is a library of checks the other domains call through
``identity.service``."""
