"""Portal simulators for the demo, the tests and the benchmarks.

aiohttp.web applications that implement the CKAN Action API (and PortalJS Cloud's flavour
of it, with presigned uploads to an S3-like store), the Opendatasoft Automation API v1.0
and the DataPress API over in-memory stores, with a synthetic catalog and fault injection::

    store = CkanStore()
    seed_ckan(store, datasets=50)
    async with serve(create_ckan_app(store, faults=Faults(error_rate=0.1))) as url:
        ...
"""

from bulkport.testing.catalog import generate_packages, seed_ckan, seed_datapress
from bulkport.testing.ckan import CkanStore, create_ckan_app
from bulkport.testing.datapress import DataPressStore, create_datapress_app
from bulkport.testing.faults import FAULT_KINDS, Faults, RequestStats
from bulkport.testing.files import Blob, BlobStore, SyntheticFile
from bulkport.testing.ods import OdsStore, create_ods_app
from bulkport.testing.ods_catalog import seed_ods
from bulkport.testing.ods_explore import RecordSet
from bulkport.testing.portaljs import create_portaljs_app
from bulkport.testing.server import ThreadedServer, serve

__all__ = [
    "FAULT_KINDS",
    "Blob",
    "BlobStore",
    "CkanStore",
    "DataPressStore",
    "Faults",
    "OdsStore",
    "RecordSet",
    "RequestStats",
    "SyntheticFile",
    "ThreadedServer",
    "create_ckan_app",
    "create_datapress_app",
    "create_ods_app",
    "create_portaljs_app",
    "generate_packages",
    "seed_ckan",
    "seed_datapress",
    "seed_ods",
    "serve",
]
