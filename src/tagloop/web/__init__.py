"""The web UI: server-rendered pages (Jinja2 + htmx, vendored; no build step, works offline)
for reviewers, moderators and admins who log in with a name and password (``services/users``).

It is a door of the server like ``/v1`` and the Comprehend API: ``api/server.create_app``
mounts it with :func:`add_web` and answers its errors with :func:`error_page`. Web login is
required also when API authentication is off (``--no-auth``): answers are recorded under the
reviewer's name, and a loopback-only server still has several people's browsers on one
machine; the no-auth server's loopback checks (``api/local_only``) apply on top.
"""

from tagloop.web.door import add_web, error_page, owns

__all__ = ["add_web", "error_page", "owns"]
