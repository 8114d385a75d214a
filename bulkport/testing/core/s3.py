"""An S3-compatible object store behind presigned URLs, for the PortalJS Cloud simulator.

URLs are signed as AWS Signature Version 4 query strings (``X-Amz-Algorithm``,
``X-Amz-Credential``, ``X-Amz-Date``, ``X-Amz-Expires``, ``X-Amz-SignedHeaders``,
``X-Amz-Signature``), checked the way S3 checks them, and refused with S3's XML errors:

- ``Authorization`` header as well as a signed query: 400 ``InvalidArgument``;
- no signature: 403 ``AccessDenied``; expired: 403 ``AccessDenied`` "Request has expired";
- a signature that does not match (tampered URL, other method or host): 403
  ``SignatureDoesNotMatch``;
- PUT with ``Transfer-Encoding: chunked``: 501 ``NotImplemented`` (S3 takes no chunked
  body); PUT without ``Content-Length``: 411 ``MissingContentLength``; over the size limit
  (5 GiB for one PUT): 400 ``EntityTooLarge``;
- an unknown key: 404 ``NoSuchKey``.

Bodies stream to disk through the site's :class:`~bulkport.testing.core.files.BlobStore`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from urllib.parse import quote, urlencode
from xml.sax.saxutils import escape

from aiohttp import web

from bulkport.testing.core.files import BlobStore
from bulkport.testing.core.responses import CHUNK, stream_blob

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_PUT_SIZE = 5 * 1024**3  # S3's limit for a single PUT
MAX_EXPIRES = 7 * 24 * 3600
_QUERY_AUTH = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
               "X-Amz-SignedHeaders", "X-Amz-Signature")
_DATE = "%Y%m%dT%H%M%SZ"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def s3_error(status: int, code: str, message: str,
             extra: dict[str, object] | None = None) -> web.Response:
    """An S3 error reply: ``<Error><Code>...</Code><Message>...</Message>...</Error>``."""
    request_id = secrets.token_hex(8).upper()
    fields = "".join(f"<{name}>{escape(str(value))}</{name}>"
                     for name, value in (extra or {}).items())
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>{fields}"
            f"<RequestId>{request_id}</RequestId><HostId>{request_id.lower()}</HostId>"
            "</Error>")
    return web.Response(status=status, text=body, content_type="application/xml",
                        headers={"x-amz-request-id": request_id})


class Signer:
    """Signs and checks SigV4 presigned URLs with one access key pair."""

    def __init__(self, *, access_key: str = "AKIABULKPORTSIMULATE", secret_key: str | None = None,
                 region: str = "auto", clock: Callable[[], float] = time.time) -> None:
        self.access_key = access_key
        self.secret_key = secret_key or secrets.token_urlsafe(30)
        self.region = region
        self.clock = clock

    def _canonical(self, method: str, host: str, path: str,
                   query: dict[str, str]) -> tuple[str, str]:
        """The canonical request and the string to sign (SigV4, unsigned payload)."""
        canonical_query = "&".join(
            f"{quote(key, safe='-_.~')}={quote(value, safe='-_.~')}"
            for key, value in sorted(query.items()) if key != "X-Amz-Signature")
        canonical = "\n".join((method, quote(path, safe="/-_.~"), canonical_query,
                               f"host:{host}\n", "host", "UNSIGNED-PAYLOAD"))
        scope = query.get("X-Amz-Credential", "").split("/", 1)[-1]
        to_sign = "\n".join((ALGORITHM, query.get("X-Amz-Date", ""), scope,
                             hashlib.sha256(canonical.encode()).hexdigest()))
        return canonical, to_sign

    def _signature(self, date: str, to_sign: str) -> str:
        key = _hmac(("AWS4" + self.secret_key).encode(), date)
        for part in (self.region, "s3", "aws4_request"):
            key = _hmac(key, part)
        return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()

    def presign(self, method: str, origin: str, path: str, expires: int) -> str:
        """A URL on ``origin`` (``scheme://host[:port]``) for ``method`` on ``path``."""
        now = datetime.fromtimestamp(self.clock(), timezone.utc)
        date = now.strftime("%Y%m%d")
        query = {"X-Amz-Algorithm": ALGORITHM,
                 "X-Amz-Credential": f"{self.access_key}/{date}/{self.region}/s3/aws4_request",
                 "X-Amz-Date": now.strftime(_DATE), "X-Amz-Expires": str(expires),
                 "X-Amz-SignedHeaders": "host"}
        host = origin.split("://", 1)[1]
        _, to_sign = self._canonical(method, host, path, query)
        query["X-Amz-Signature"] = self._signature(date, to_sign)
        return f"{origin}{quote(path, safe='/-_.~')}?{urlencode(query)}"

    def check(self, request: web.Request) -> web.Response | None:
        """None when the request carries a valid, unexpired signature; else S3's error."""
        query = {key: request.query[key] for key in request.query}
        header = request.headers.get("Authorization")
        if header is not None:
            message = ("Only one auth mechanism allowed; only the X-Amz-Algorithm query "
                       "parameter, Signature query string parameter or the Authorization "
                       "header should be specified") if "X-Amz-Algorithm" in query else (
                       "Unsupported Authorization Type")
            return s3_error(400, "InvalidArgument", message, {
                "ArgumentName": "Authorization", "ArgumentValue": header})
        if "X-Amz-Algorithm" not in query:
            return s3_error(403, "AccessDenied", "Access Denied")
        if query["X-Amz-Algorithm"] != ALGORITHM or any(k not in query for k in _QUERY_AUTH):
            return s3_error(400, "AuthorizationQueryParametersError",
                            "Query-string authentication version 4 requires the "
                            "X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, "
                            "X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
        credential = query["X-Amz-Credential"].split("/")
        if len(credential) != 5 or credential[3:] != ["s3", "aws4_request"]:
            return s3_error(400, "AuthorizationQueryParametersError",
                            "Error parsing the X-Amz-Credential parameter; the Credential is "
                            "mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/"
                            "aws4_request\".")
        if credential[0] != self.access_key:
            return s3_error(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided "
                            "does not exist in our records.", {"AWSAccessKeyId": credential[0]})
        try:
            signed_at = datetime.strptime(query["X-Amz-Date"], _DATE).replace(
                tzinfo=timezone.utc)
            expires = int(query["X-Amz-Expires"])
        except ValueError:
            return s3_error(400, "AuthorizationQueryParametersError",
                            "X-Amz-Date must be in the ISO8601 Long Format "
                            "\"yyyyMMdd'T'HHmmss'Z'\" and X-Amz-Expires an integer")
        if not 0 <= expires <= MAX_EXPIRES:
            return s3_error(400, "AuthorizationQueryParametersError",
                            "X-Amz-Expires must be less than a week (in seconds) that is "
                            "604800")
        now = self.clock()
        if now > signed_at.timestamp() + expires:
            fmt = "%Y-%m-%dT%H:%M:%SZ"
            return s3_error(403, "AccessDenied", "Request has expired", {
                "X-Amz-Expires": expires,
                "Expires": datetime.fromtimestamp(signed_at.timestamp() + expires,
                                                  timezone.utc).strftime(fmt),
                "ServerTime": datetime.fromtimestamp(now, timezone.utc).strftime(fmt)})
        canonical, to_sign = self._canonical(request.method, request.host, request.path, query)
        expected = self._signature(credential[1], to_sign)
        if not hmac.compare_digest(expected, query["X-Amz-Signature"]):
            return s3_error(403, "SignatureDoesNotMatch",
                            "The request signature we calculated does not match the signature "
                            "you provided. Check your key and signing method.", {
                                "AWSAccessKeyId": self.access_key, "StringToSign": to_sign,
                                "SignatureProvided": query["X-Amz-Signature"],
                                "CanonicalRequest": canonical})
        return None


class ObjectStore:
    """One bucket whose objects live in a :class:`BlobStore` under ``s3:<key>``.

    ``alias`` maps a key to another blob of the store (read-only), so a site's hosted files
    can be served as objects without a copy. Tests may read ``authorization_headers`` (how
    many object requests carried an ``Authorization`` header: a leaked API key).
    """

    def __init__(self, blobs: BlobStore, signer: Signer, *, bucket: str,
                 max_size: int = MAX_PUT_SIZE,
                 alias: Callable[[str], str | None] | None = None) -> None:
        self.blobs = blobs
        self.signer = signer
        self.bucket = bucket
        self.max_size = max_size
        self.alias = alias
        self.content_types: dict[str, str] = {}
        self.etags: dict[str, str] = {}
        self.authorization_headers = 0

    def blob_key(self, key: str) -> str:
        """Where the object ``key`` lives in the blob store."""
        return (self.alias(key) if self.alias else None) or f"s3:{key}"

    def presign(self, method: str, origin: str, key: str, expires: int) -> str:
        """A presigned URL for ``method`` on object ``key``, served at ``origin``."""
        return self.signer.presign(method, origin, f"/{self.bucket}/{key}", expires)

    def forget(self, key: str) -> None:
        """Drop what is known of an object that moved or was deleted."""
        self.content_types.pop(key, None)
        self.etags.pop(key, None)

    def delete(self, key: str) -> None:
        """Remove an uploaded object (never an aliased one)."""
        self.blobs.delete(f"s3:{key}")
        self.forget(key)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one request made to the object store's origin."""
        if request.headers.get("Authorization") is not None:
            self.authorization_headers += 1
        if request.method not in ("PUT", "GET", "HEAD"):
            return s3_error(405, "MethodNotAllowed",
                            "The specified method is not allowed against this resource.",
                            {"Method": request.method, "ResourceType": "OBJECT"})
        if request.method == "PUT":
            framing = self._check_framing(request)
            if framing is not None:
                return framing
        refused = self.signer.check(request)
        if refused is not None:
            return refused
        bucket, _, key = request.path.lstrip("/").partition("/")
        if bucket != self.bucket or not key:
            return s3_error(404, "NoSuchBucket", "The specified bucket does not exist",
                            {"BucketName": bucket})
        if request.method == "PUT":
            return await self._put(request, key)
        blob = self.blobs.get(self.blob_key(key))
        if blob is None:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.", {"Key": key})
        headers = {"Accept-Ranges": "bytes"}
        if key in self.etags:
            headers["ETag"] = self.etags[key]
        content_type = self.content_types.get(key, "binary/octet-stream")
        if request.method == "HEAD":
            return web.Response(headers={**headers, "Content-Length": str(blob.size),
                                         "Content-Type": content_type})
        return await stream_blob(request, blob, content_type=content_type, headers=headers)

    def _check_framing(self, request: web.Request) -> web.Response | None:
        if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            return s3_error(501, "NotImplemented", "A header you provided implies "
                            "functionality that is not implemented",
                            {"Header": "Transfer-Encoding"})
        if request.content_length is None:
            return s3_error(411, "MissingContentLength",
                            "You must provide the Content-Length HTTP header.")
        if request.content_length > self.max_size:
            return s3_error(400, "EntityTooLarge",
                            "Your proposed upload exceeds the maximum allowed size",
                            {"ProposedSize": request.content_length,
                             "MaxSizeAllowed": self.max_size})
        return None

    async def _put(self, request: web.Request, key: str) -> web.Response:
        digest = hashlib.md5(usedforsecurity=False)  # S3's ETag of a single-part object

        async def chunks() -> AsyncIterator[bytes]:
            async for chunk in request.content.iter_chunked(CHUNK):
                digest.update(chunk)
                yield chunk

        await self.blobs.write(f"s3:{key}", chunks())
        etag = f'"{digest.hexdigest()}"'
        self.etags[key] = etag
        self.content_types[key] = request.headers.get("Content-Type", "binary/octet-stream")
        return web.Response(headers={"ETag": etag,
                                     "x-amz-request-id": secrets.token_hex(8).upper()})
