"""WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi ...`."""

import gc

from onboarding import create_app

app = create_app()
# What the app built at start-up lives as long as the process: set it aside from garbage
# collection, so a full collection (one in a few thousand requests) scans only what requests made.
gc.collect()
gc.freeze()
