"""The views the ledger's log builds."""
