"""Duty Ledger's write model: aggregates, events, deadline rules and the Ledger application."""
