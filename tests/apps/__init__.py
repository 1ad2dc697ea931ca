"""WSGI apps served by the black-box tests (``python -m cunicorn tests.apps.X:app``)."""
