"""``me`` owns no tables: a resident's own API works on cards' and accounts' through their services."""
