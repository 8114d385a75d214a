"""PortalJS Cloud simulator: the CKAN simulator under ``/@{portal}``, plus presigned uploads
to an S3-like object store (:mod:`bulkport.testing.core.s3`) on a second host name.

:mod:`.app` builds the application on the CKAN simulator's store and actions;
:mod:`.seed` is the portal ``bulkport simulate portaljs`` serves.
"""

from bulkport.testing.core.simulator import Simulator
from bulkport.testing.portaljs import seed

SIMULATOR = Simulator(name="portaljs",
                      summary="a PortalJS Cloud portal (CKAN's Action API under /@NAME, "
                              "presigned uploads to an object store)",
                      build=seed.simulated_site, add_arguments=seed.add_arguments,
                      address=seed.address, api_url=seed.api_url)
