"""Webhooks: the public log posted to integrators' endpoints, signed as Standard Webhooks 1.0 asks."""
