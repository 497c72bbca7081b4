"""Thin adapters from other tools' contracts to judgecal: TRL, verl and OpenRLHF rewards
(:mod:`rewards` does the work) and an Inspect AI scorer (through the HTTP client)."""
