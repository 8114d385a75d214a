"""Opendatasoft Automation API v1.0 simulator over an in-memory store.

:mod:`.app` builds the application and lists its routes; their handlers are in
:mod:`.datasets` (datasets and publication), :mod:`.templates` (metadata), :mod:`.files`
(resources, files, attachments), :mod:`.apikeys`, :mod:`.explore` (the explore API's
export, of the records :mod:`.extract` reads from uploaded files) and :mod:`.portal` (the
dataset pages and attachments visitors reach), on the request plumbing of :mod:`.http` and
the error replies of :mod:`.errors`.
:mod:`.store` holds a domain's content, :mod:`.metadata` the metadata templates' rules,
:mod:`.seed` the domain ``bulkport simulate ods`` serves. :mod:`.openapi` checks replies
against Opendatasoft's published OpenAPI document, for the tests.
"""

from bulkport.testing.core.simulator import Simulator
from bulkport.testing.ods import seed

SIMULATOR = Simulator(name="ods",
                      summary="an Opendatasoft domain (the Automation API v1.0), empty "
                              "unless --datasets is given",
                      build=seed.simulated_site, add_arguments=seed.add_arguments, datasets=0,
                      authorization="Authorization: apikey ")
