"""The fee ledger: import what each room owes from a CSV export and read it back for callers.

Domain operations live in `ivr.fees.ledger` (no Flask; they only flush); the `ivr fees` commands in
`ivr.fees.cli`.
"""
