"""Contracts domain: rosters and what they mean for attribution and member-months. No I/O."""
