"""Family doctors: teams, service packages, contracts, services delivered, referrals, coverage."""
