"""The format readers (CCLF, FHIR EOB, Tuva, canonical JSONL): payer files to canonical claim-line submissions,
one interface (base.py), one module each. `acoflow load`, the bench and the tests use them."""
