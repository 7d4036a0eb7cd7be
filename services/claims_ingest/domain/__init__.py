"""claims_ingest domain: identities of claim lines and spend events, and attribution matching. No I/O."""
