"""The web UI: a single-page client of the REST API, served by ``inhouse serve`` at ``/``.

Everything the UI does goes through the public routes of :mod:`inhouse.server`
(it has no back door: a person in the browser can do exactly what a program
with the same token can). The browser code is the project's own ES modules
under ``static/`` (no build step, no third-party browser code, nothing
fetched at run time); charts are inline SVG drawn by ``static/charts.js``.

- ``app.py``: the server's app with the UI's files mounted, and their security headers
- ``static/``: ``index.html``, ``app.js`` (shell, router, sign-in), ``api.js``
  (fetch, errors, job events), ``dom.js`` (elements and widgets),
  ``charts.js`` and one module per screen under ``screens/``
"""
