"""Identity has no endpoints, so nobody needs permission here: its functions are pure."""
