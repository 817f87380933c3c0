"""Follow-up calls (回访): when residents may be called, and the calls themselves."""
