"""What runs cost, and the price table they are compared against, for ``inhouse runs|prices`` and REST.

The operations are the workspace's own (:mod:`inhouse.workspace.costs`); the doors reach them here.

    Illustrative (needs a workspace; not run as a doctest):
    >>> [p.model for p in prices(ws)][:1]
    ['cohere-embed-english-v3']
"""

from __future__ import annotations

from ..workspace.costs import get_run, list_runs, prices, set_price

__all__ = ["get_run", "list_runs", "prices", "set_price"]
