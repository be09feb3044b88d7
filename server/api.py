"""The HTTP API's handlers moved to modules of their own; this name stays for old imports.

``server.sessions`` (sessions), ``server.jobs`` (reading and cancelling jobs),
``server.submit`` (creating jobs), ``server.params`` (what a request brings).
"""

from server.jobs import job_view, owned_job
from server.params import json_body, parse_job_id, services_of
from server.responses import model_response

__all__ = ["job_view", "json_body", "model_response", "owned_job", "parse_job_id", "services_of"]
