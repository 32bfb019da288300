"""CE Hub Ledger."""
