"""The records and the mergeable Partial; imports nothing of the package but settings."""
