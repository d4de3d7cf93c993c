"""The resident's own API: my card, my family members' cards, signing in is in accounts/."""
