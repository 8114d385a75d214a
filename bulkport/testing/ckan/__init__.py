"""CKAN Action API simulator (CKAN 2.10/2.11 semantics) over an in-memory store.

:mod:`.app` builds the aiohttp application and routes requests to the Action API
functions of :mod:`.actions` (reads) and :mod:`.write` (writes a migration into CKAN
needs), with CKAN's validation (:mod:`.validate`, :mod:`.model`), search (:mod:`.search`),
``package_revise`` (:mod:`.revise`), users and API tokens (:mod:`.tokens`) and errors
(:mod:`.errors`). :mod:`.store` holds a site's content, :mod:`.seed` the site
``bulkport simulate ckan`` serves.
"""

from bulkport.testing.ckan import seed
from bulkport.testing.core.simulator import Simulator

SIMULATOR = Simulator(name="ckan", summary="a CKAN site (the Action API of CKAN 2.10/2.11)",
                      build=seed.simulated_site, add_arguments=seed.add_arguments)
