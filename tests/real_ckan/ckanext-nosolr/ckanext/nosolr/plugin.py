"""A test-only stand-in for Solr, so that a real CKAN runs where no Solr can be installed.

CKAN 2.11+ indexes a dataset inside the write's own transaction: with no search index every
create and update fails. This plugin swaps CKAN's Solr connection for one backed by a table
in CKAN's own PostgreSQL database. CKAN itself still builds every search document and every
query (``fq`` with ``+capacity:public``, ``+state``, permission labels, ``rows`` + 1, ``fl``), so
what reaches the "index" and what comes back is what CKAN would send to and get from Solr.

It is NOT a search backend: no ranking (``score`` sorts nothing), no stemming, no spell
check; facet counts are plain value counts. It answers the Solr queries that bulkport's tests send (see
``query.py``). Never install it on a portal that people use.
"""

from __future__ import annotations

import os
from typing import Any

import ckan
import ckan.plugins as plugins
import pysolr
from ckan.lib import search
from ckan.lib.search import common, index
from ckan.lib.search import query as search_query

from ckanext.nosolr.store import DocumentStore, Schema, SearchFailure


class StoreConnection:
    """What CKAN uses of ``pysolr.Solr``: ``add``, ``delete``, ``commit`` and ``search``."""

    url = "postgresql://(nosolr)"

    def __init__(self, store: DocumentStore) -> None:
        self.store = store

    def add(self, docs: list[dict[str, Any]], commit: bool = True, **_: Any) -> None:
        self.store.add(docs)

    def delete(self, id: str | None = None, q: str | None = None, **_: Any) -> None:
        query = q if q is not None else f'index_id:"{id}"'
        try:
            self.store.delete(query)
        except SearchFailure as error:
            raise pysolr.SolrError(str(error)) from None

    def commit(self, **_: Any) -> None:
        """Every add and delete is committed at once."""

    def search(self, q: str | None = None, **params: Any) -> pysolr.Results:
        fq = params.get("fq") or []
        filters = [fq] if isinstance(fq, str) else list(fq)
        parsing = {"default_field": str(params.get("df") or "text"),
                   "default_and": str(params.get("q.op", "OR")).upper() == "AND"}
        facet_fields = params.get("facet.field") or []
        try:
            count, docs = self.store.search(
                q or "*:*", filters, sort=str(params.get("sort") or ""),
                start=int(params.get("start") or 0), rows=int(params.get("rows", 10)),
                fl=str(params.get("fl") or "*"), **parsing)
            facets = {} if str(params.get("facet", "false")) != "true" else self.store.facets(
                q or "*:*", filters, [facet_fields] if isinstance(facet_fields, str) else facet_fields,
                limit=int(params.get("facet.limit") or 50), mincount=int(params.get("facet.mincount") or 1),
                **parsing)
        except SearchFailure as error:
            raise pysolr.SolrError(f"org.apache.solr.search.SyntaxError: {error}") from None
        return pysolr.Results({"response": {"docs": docs, "numFound": count},
                               "facet_counts": {"facet_fields": facets}})


class NoSolrPlugin(plugins.SingletonPlugin):
    plugins.implements(plugins.IConfigurable)

    def configure(self, config: Any) -> None:
        schema = Schema(os.path.join(os.path.dirname(ckan.__file__), "config", "solr", "schema.xml"))
        store = DocumentStore(config["sqlalchemy.url"], schema)
        store.create()

        def make_connection(decode_dates: bool = True) -> StoreConnection:
            return StoreConnection(store)

        # Each module imported the name itself: replace it everywhere CKAN looks it up.
        for module in (common, index, search_query, search):
            module.make_connection = make_connection  # type: ignore[attr-defined]
        common.is_available = lambda: True  # type: ignore[assignment]
