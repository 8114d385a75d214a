"""What every simulator is built from: the aiohttp app (:mod:`.app`), fault injection and
request accounting (:mod:`.faults`), file bodies (:mod:`.files`), replies
(:mod:`.responses`), an S3-like object store (:mod:`.s3`), the synthetic catalog
(:mod:`.catalog`), and serving them (:mod:`.server`, :mod:`.simulator`)."""
