"""S3 failures in plain words: what to fix (keys, prefix, region, bucket, clock, network), never a secret.

The bucket is write-only, so an error is all S3 will ever tell us; each one is turned into a
`TargetError` that names the setting to change, with `retryable` set only where a later attempt
can succeed.
"""

from __future__ import annotations

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    HTTPClientError,
    InvalidRegionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
    SSLError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from agent.errors import TargetError


class ReadBlockedError(BotoCoreError):
    """Raised before sending any S3 operation that is not part of a PUT.

    A botocore exception on purpose: it is raised inside botocore's call machinery (a `before-call`
    hook) and never leaves the S3 modules; `explain_s3_error` turns it into a TargetError.

    In this module the only source of such a call is botocore's own region redirect, which probes
    the bucket with HEAD when S3 says "wrong region" without naming the right one.
    """

    fmt = "feed-agent blocked S3 {operation}: the bucket is write-only and is never read"


def _client_error(exc: BaseException) -> BaseException:
    """`upload_file` wraps a ClientError in S3UploadFailedError; the original is on `__context__`."""
    if isinstance(exc, S3UploadFailedError):
        inner = exc.__cause__ or exc.__context__
        if isinstance(inner, (ClientError, BotoCoreError)):
            return inner
    return exc


def _bucket_region(error: ClientError) -> str | None:
    """The bucket's real region when S3 tells it (header on redirects, field on signing errors)."""
    headers = error.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    region = headers.get("x-amz-bucket-region") or error.response.get("Error", {}).get("Region")
    return str(region) if region else None


REGION_CODES = frozenset(
    {
        "AuthorizationHeaderMalformed",
        "PermanentRedirect",
        "IllegalLocationConstraintException",
        "IllegalLocationConstraint",
        "301",
        "TemporaryRedirect",
    }
)
CLOCK_CODES = frozenset({"RequestTimeTooSkewed", "RequestExpired"})
DAMAGE_CODES = frozenset({"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"})


def explain_s3_error(exc: BaseException, *, bucket: str, key: str, region: str, region_hint: str = "") -> TargetError:
    """Turn a boto3/botocore exception into a TargetError an admin can act on (never a secret).

    `region_hint` is appended to wrong-region messages (Handshake's known regions, for example).
    """
    where = f"s3://{bucket}/{key}"
    cause = _client_error(exc)
    if isinstance(cause, ClientError):
        return _explain_client_error(cause, where=where, bucket=bucket, key=key, region=region, region_hint=region_hint)
    if isinstance(cause, ReadBlockedError):
        return TargetError(
            f"Upload to {where} failed: S3 says the bucket is not in region {region}, and finding the "
            "right region would need a read the write-only bucket does not allow. Set region to the one "
            f"the vendor gave you{region_hint}."
        )
    if isinstance(cause, SSLError):
        return TargetError(
            f"Upload to {where} failed: the TLS certificate of the S3 endpoint was not trusted ({cause}). "
            "If the store uses a private certificate authority, set verify_tls to the CA bundle's path."
        )
    if isinstance(
        cause, (EndpointConnectionError, BotoConnectionError, ConnectionClosedError, ReadTimeoutError, HTTPClientError)
    ):
        return TargetError(
            f"Upload to {where} failed: the S3 endpoint could not be reached ({cause}). This is usually "
            "temporary (network, proxy or firewall); the file will be sent again.",
            retryable=True,
        )
    if isinstance(cause, (ParamValidationError, InvalidRegionError, NoRegionError)):
        return TargetError(f"Upload to {where} failed: the settings do not make a valid S3 request ({cause}).")
    if isinstance(cause, (NoCredentialsError, PartialCredentialsError)):
        return TargetError(f"Upload to {where} failed: access_key_id or secret_access_key is empty; set both in .env.")
    if isinstance(cause, S3UploadFailedError):
        return TargetError(f"Upload to {where} failed: {cause}", retryable=True)
    if isinstance(cause, BotoCoreError):
        return TargetError(f"Upload to {where} failed: {cause}", retryable=True)
    return TargetError(f"Upload to {where} failed: {type(cause).__name__}: {cause}")


def _explain_client_error(
    error: ClientError, *, where: str, bucket: str, key: str, region: str, region_hint: str
) -> TargetError:
    info = error.response.get("Error", {})
    code = str(info.get("Code", ""))
    said = str(info.get("Message", "")).strip() or code
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    folder = key.rsplit("/", 1)[0] + "/" if "/" in key else "(the top of the bucket)"

    def fail(text: str, retryable: bool = False) -> TargetError:
        return TargetError(f"Upload to {where} failed: {text}", retryable=retryable, http_status=status)

    if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
        return fail(
            f"S3 answered Access Denied. The keys were accepted but may not write to {folder} in bucket "
            f"{bucket}: check that prefix is exactly the folder the vendor gave you, that bucket is "
            "spelled right, and that the keys are the current ones (they may have been rotated)."
        )
    if code == "InvalidAccessKeyId":
        return fail(
            "S3 does not know this access key id. Copy access_key_id again from the vendor "
            "(keys may have been rotated or revoked)."
        )
    if code == "SignatureDoesNotMatch":
        return fail(
            "the secret access key is wrong (S3 could not verify the request signature). Copy "
            "secret_access_key again from the vendor, without spaces."
        )
    if code == "NoSuchBucket":
        return fail(f"bucket '{bucket}' does not exist. Check the bucket setting against the vendor's.")
    if code in REGION_CODES:
        actual = _bucket_region(error)
        where_it_is = f"the bucket is in {actual}" if actual else "the bucket is in another region"
        return fail(
            f"{where_it_is}, not {region} (S3 said {code}: {said}). Set region to the bucket's region{region_hint}."
        )
    if code in CLOCK_CODES:
        return fail(f"S3 says this computer's clock is wrong ({said}). Fix the clock (enable NTP).")
    if code == "InvalidBucketName":
        return fail(f"'{bucket}' is not a valid bucket name ({said}).")
    if code in DAMAGE_CODES or code.startswith("InvalidChecksum"):
        return fail(f"the file arrived damaged (S3 said {code}: {said}); send it again.", retryable=True)
    throttled = status == 429 or code in ("SlowDown", "RequestTimeout", "TooManyRequests")
    retryable = (isinstance(status, int) and status >= 500) or throttled
    return fail(f"S3 answered {code or status}: {said}.", retryable=retryable)
