"""The Merkle log over the public log index (RFC 6962): hashing, leaves, proofs."""
