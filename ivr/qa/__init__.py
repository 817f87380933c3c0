"""QA review: the phone-etiquette scorecard (E1–E8), its rules and the evidence they keep."""
