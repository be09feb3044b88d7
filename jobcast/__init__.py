"""jobcast: background jobs with live, resumable progress for every browser watching."""

__version__ = "0.1.0"
