"""Placeholder until the job type lands."""

JOB_TYPES = ()
