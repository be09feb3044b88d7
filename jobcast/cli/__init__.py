"""``jobcast``: run the service's processes, and submit, follow and manage jobs from a shell.

Two kinds of commands share the one entry point (main.py): the operator's, which
act on this machine (operator_commands.py), and the clients of a running server at
``--url`` (client_commands.py, with target.py for the server and its token, and
progress.py for following a job).
"""

from jobcast.cli.main import app, main

__all__ = ["app", "main"]
