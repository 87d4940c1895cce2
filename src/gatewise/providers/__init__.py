"""Provider adapters (pure wire translation) and in-process engines, behind one protocol."""
