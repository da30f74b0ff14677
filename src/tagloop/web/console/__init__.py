"""The console: pages to look at every classifier, version, iteration and job, act on them
(admins: promote, roll back, stop, retry, upload), and the plots as image URLs.

Everything is rendered on the server (Jinja2, htmx for live progress only), from this
package's files: it works offline and at any width from a phone's 390 px up. Who may see
what: the read pages are for every signed-in person (reviewer and up), anything that changes
a classifier or reads job payloads is for admins (``web/security.py`` roles).
"""

from fastapi import APIRouter

from tagloop.web.console import classifiers, iterations, jobs, upload, versions

router = APIRouter(include_in_schema=False)
for part in (classifiers, versions, iterations, jobs, upload):
    router.include_router(part.router)
