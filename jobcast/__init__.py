"""jobcast: background jobs with live, resumable progress for every browser watching."""
