"""DataPress API simulator over an in-memory store.

:mod:`.app` builds the application (datasets, export, whoami) with the uploads of
:mod:`.files`, the RFC 6902 patches of :mod:`.patch` and the dataset schema of
:mod:`.schema`, on the request plumbing of :mod:`.http` and the error replies of
:mod:`.errors`. :mod:`.store` holds a site's content, :mod:`.seed` the site
``bulkport simulate datapress`` serves.
"""

from bulkport.testing.core.simulator import Simulator
from bulkport.testing.datapress import seed

SIMULATOR = Simulator(name="datapress",
                      summary="a DataPress site (its API under /api/v3, or /api with --prefix)",
                      build=seed.simulated_site, add_arguments=seed.add_arguments)
