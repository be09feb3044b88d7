"""The websocket handlers moved to ``server.sockets``; this name stays for old imports."""

from server.sockets import close_all, job_socket, owner_socket

__all__ = ["close_all", "job_socket", "owner_socket"]
