"""Small helpers shared by every domain: errors, ids, the clock."""
