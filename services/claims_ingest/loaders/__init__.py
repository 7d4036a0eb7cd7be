"""File loaders: turn payer files into canonical claim-line submissions (one interface, one module each)."""
