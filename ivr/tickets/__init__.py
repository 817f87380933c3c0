"""Tickets: the domain operations behind the phone line (no Flask imports here)."""
