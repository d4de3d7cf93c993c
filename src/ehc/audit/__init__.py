"""The audit trail: a hash chain of every access to a resident's personal data by anyone else."""
