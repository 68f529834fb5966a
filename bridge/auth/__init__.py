"""JWT verification and issuance, and the revocation list."""
