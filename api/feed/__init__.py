"""The public log for integrators: envelopes, pages by log index, the bell of live streams."""
