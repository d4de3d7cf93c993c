"""The master patient index: one person per resident, with every identifier that leads to them."""
