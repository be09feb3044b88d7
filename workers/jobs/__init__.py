"""Job types that ship with jobcast."""
