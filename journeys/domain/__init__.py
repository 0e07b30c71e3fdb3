"""Pure, deterministic flow logic: definitions, events, schedule math. No I/O here."""
