"""What a failed multipart upload left in the bucket, so the report can say it in plain words.

Why: a multipart upload that fails part-way is not nothing. Its parts stay stored (and billed) in
the bucket, invisible to a listing of objects, until someone aborts the upload. s3transfer does
abort it on failure, but AbortMultipartUpload is an IAM action of its own that a PUT-only key
(Handshake's, AlumnIQ's) may not have; then the abort is refused, s3transfer only logs it, and the
leftover stays. This module watches the calls on the client (botocore events: the abort's
parameters before they are built, each answer after the call) and says, per key, whether the
upload was aborted or left behind, with its UploadId and what to do about it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

_STASH = "feed_agent_abort"  # where the abort's key and UploadId wait between the two events


@dataclass(frozen=True)
class AbortResult:
    """One AbortMultipartUpload attempt: whether S3 took it, and its error code if not."""

    upload_id: str
    done: bool
    code: str = ""


class MultipartAborts:
    """Remembers, per key, the last multipart upload started and what became of its abort."""

    def __init__(self) -> None:
        self._started: dict[str, str] = {}
        self._aborts: dict[str, AbortResult] = {}
        self._lock = threading.Lock()

    def register(self, client: Any, unique: str) -> None:
        events = client.meta.events
        events.register("after-call.s3.CreateMultipartUpload", self._started_upload, unique_id=f"{unique}-create")
        events.register(
            "before-parameter-build.s3.AbortMultipartUpload", self._abort_asked, unique_id=f"{unique}-abort-ask"
        )
        events.register("after-call.s3.AbortMultipartUpload", self._abort_answered, unique_id=f"{unique}-abort")

    def forget(self, key: str) -> None:
        """Before a new upload of `key`: an earlier attempt's facts must not describe this one."""
        with self._lock:
            self._started.pop(key, None)
            self._aborts.pop(key, None)

    def _started_upload(self, parsed: dict[str, Any], **_: Any) -> None:
        key, upload_id = parsed.get("Key"), parsed.get("UploadId")
        if key and upload_id:
            with self._lock:
                self._started[str(key)] = str(upload_id)

    def _abort_asked(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[_STASH] = (str(params.get("Key", "")), str(params.get("UploadId", "")))

    def _abort_answered(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        key, upload_id = context.get(_STASH, ("", ""))
        done = 200 <= int(getattr(http_response, "status_code", 0)) < 300
        code = "" if done else str(parsed.get("Error", {}).get("Code", "") or http_response.status_code)
        with self._lock:
            self._aborts[key] = AbortResult(upload_id, done, code)

    def leftover(self, bucket: str, key: str) -> str:
        """The sentence for a failed upload of `key`: aborted, left incomplete, or "" (no multipart)."""
        with self._lock:
            upload_id = self._started.get(key)
            abort = self._aborts.get(key)
        if upload_id is None:
            return ""
        if abort is not None and abort.done:
            return f" The incomplete multipart upload was aborted, so nothing of it is left in s3://{bucket}."
        why = f"S3 refused AbortMultipartUpload ({abort.code})" if abort is not None else "it could not be aborted"
        return (
            f" The failed multipart upload {upload_id} of s3://{bucket}/{key} is left incomplete in the bucket "
            f"({why}): its parts stay stored, and billed, until it is aborted. Grant the access key "
            "s3:AbortMultipartUpload on the folder, or ask the bucket's owner for a lifecycle rule "
            "AbortIncompleteMultipartUpload (e.g. after 1 day)."
        )
