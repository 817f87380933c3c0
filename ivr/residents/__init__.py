"""The resident registry (住户登记): which phones belong to which rooms of a property, so the line can offer a
caller their room and tell arrears only to the room's own residents. No Flask here."""
