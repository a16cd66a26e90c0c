"""Read models built from the ledger's notification log (issue 3)."""
