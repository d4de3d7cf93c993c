"""Accounts: staff of institutions and of the health commission, and how they sign in."""
