// tagloop web UI (filled in with the review page)
