"""The HTTP API and the `dutyledger` command line."""
