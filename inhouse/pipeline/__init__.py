"""Pipelines over many documents: fast classify, stored predictions, declarative runs, reports, costs, Ray."""
