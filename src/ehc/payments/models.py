"""``payments`` owns no tables yet: the sandbox keeps no token vault (a real channel's vault comes with the payment issue)."""
