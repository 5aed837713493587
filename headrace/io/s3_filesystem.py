"""The :class:`FileSystem` of ``s3://bucket/key`` paths (AWS S3, MinIO, moto...) via boto3.

Endpoint, credentials and region come from the usual AWS settings
(``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_DEFAULT_REGION``, ``AWS_PROFILE``, the shared config files); throttling
and 5xx answers are retried with backoff (botocore's "standard" mode). Keys are
read with ranged GETs (seekable, so text files split by byte ranges); a file
being written is spooled to a local temporary file and uploaded when it is
closed, in parts when large. ``rename`` is copy-then-delete (S3 has no rename),
and a "directory" is every key under ``path/``.

>>> split_s3_path("s3://bucket/dir/file.txt")
('bucket', 'dir/file.txt')
"""
from __future__ import annotations

import io
import os
import re
import tempfile
import threading
from typing import IO, Any, Iterator, List, Optional, Tuple

from headrace.io.filesystem_interface import FileSystem
from headrace.io.globs import GLOB_CHARS_RE, glob_to_regex, has_glob

#: Files over this size are uploaded (and copied) in parts.
MULTIPART_THRESHOLD = 64 << 20
_READ_BUFFER = 4 << 20
_DELETE_BATCH = 1000


def split_s3_path(path: str) -> Tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``; the key may be empty.

    >>> split_s3_path("s3://b")
    ('b', '')
    """
    if not path.lower().startswith("s3://"):
        raise ValueError(f"{path!r} is not an s3:// path")
    bucket, _, key = path[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"{path!r}: no bucket (expected s3://bucket/key)")
    return bucket, key


class S3FileSystem(FileSystem):
    """Objects in S3 buckets as files; buckets must exist.

    One boto3 client per process (clients must not cross a fork), made on first use.

    >>> from headrace.io.filesystems import get_filesystem
    >>> type(get_filesystem("s3://bucket/key")).__name__
    'S3FileSystem'
    """

    def __init__(self, multipart_threshold: int = MULTIPART_THRESHOLD) -> None:
        self.multipart_threshold = multipart_threshold
        self._lock = threading.Lock()
        self._client: Optional[Tuple[int, Any, Any]] = None

    def __getstate__(self) -> dict:
        return {"multipart_threshold": self.multipart_threshold}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["multipart_threshold"])

    def _clients(self) -> Tuple[Any, Any]:
        with self._lock:
            if self._client is None or self._client[0] != os.getpid():
                try:
                    import boto3
                    from boto3.s3.transfer import TransferConfig
                    from botocore.config import Config
                except ImportError:
                    raise ImportError("s3:// paths need boto3: pip install 'headrace[s3]'"
                                      ) from None
                client = boto3.session.Session().client(
                    "s3", config=Config(retries={"mode": "standard", "max_attempts": 8}))
                transfer = TransferConfig(multipart_threshold=self.multipart_threshold,
                                          multipart_chunksize=max(self.multipart_threshold,
                                                                  5 << 20))
                self._client = (os.getpid(), client, transfer)
            return self._client[1], self._client[2]

    @property
    def client(self) -> Any:
        """The boto3 S3 client of this process."""
        return self._clients()[0]

    def _call(self, path: str, operation: str, **kwargs: Any) -> Any:
        """Call a client operation, turning S3's errors into ``OSError`` s naming ``path``."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(**kwargs)
        except ClientError as exc:
            raise _os_error(exc, path) from None
        except BotoCoreError as exc:
            raise OSError(f"{path}: cannot reach S3 ({exc}; the endpoint comes from "
                          f"AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL)") from None

    def _list(self, bucket: str, prefix: str, path: str) -> Iterator[dict]:
        token = None
        while True:
            kwargs = {"Bucket": bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call(path, "list_objects_v2", **kwargs)
            yield from page.get("Contents", ())
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    def match(self, pattern: str) -> List[str]:
        if pattern.endswith("/"):
            pattern += "*"
        bucket, key = split_s3_path(pattern)
        if not has_glob(key):
            return [pattern] if self._head(pattern) is not None else []
        literal = key[:GLOB_CHARS_RE.search(key).start()]
        regex = re.compile(glob_to_regex(key))
        return sorted(f"s3://{bucket}/{item['Key']}"
                      for item in self._list(bucket, literal, pattern)
                      if regex.fullmatch(item["Key"]))

    def _head(self, path: str) -> Optional[dict]:
        """The object's metadata, or None if there is no such key."""
        from botocore.exceptions import ClientError

        bucket, key = split_s3_path(path)
        if not key:
            return None
        try:
            return self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            # HEAD answers carry no error body: a missing bucket is a bare 404 too.
            if _status(exc) == 404:
                return None
            raise _os_error(exc, path) from None

    def open_read(self, path: str) -> IO[bytes]:
        head = self._head(path)
        if head is None:
            raise FileNotFoundError(f"{path}: no such object")
        return io.BufferedReader(_S3RangeReader(self, path, head["ContentLength"]),
                                 _READ_BUFFER)

    def open_write(self, path: str) -> IO[bytes]:
        bucket, key = split_s3_path(path)
        if not key or key.endswith("/"):
            raise IsADirectoryError(f"{path}: not an object key")
        return io.BufferedWriter(_S3SpoolWriter(self, path))

    def upload(self, stream: IO[bytes], path: str) -> None:
        """Upload ``stream`` (from its start) to ``path``, in parts when large."""
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split_s3_path(path)
        client, transfer = self._clients()
        try:
            client.upload_fileobj(stream, bucket, key, Config=transfer)
        except ClientError as exc:
            raise _os_error(exc, path) from None
        except (BotoCoreError, S3UploadFailedError) as exc:
            if "NoSuchBucket" in str(exc):  # the managed upload wraps the ClientError in text
                raise FileNotFoundError(f"{path}: bucket {bucket!r} does not exist") from None
            raise OSError(f"{path}: upload failed: {exc}") from None

    def rename(self, source: str, destination: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        src_bucket, src_key = split_s3_path(source)
        dst_bucket, dst_key = split_s3_path(destination)
        client, transfer = self._clients()
        try:
            # The managed copy switches to a multipart copy above 5 GB (one CopyObject's limit).
            client.copy({"Bucket": src_bucket, "Key": src_key}, dst_bucket, dst_key,
                        Config=transfer)
        except ClientError as exc:
            raise _os_error(exc, source if _status(exc) == 404 else destination) from None
        except BotoCoreError as exc:
            raise OSError(f"copying {source} to {destination} failed: {exc}") from None
        self._call(source, "delete_object", Bucket=src_bucket, Key=src_key)

    def delete(self, path: str) -> None:
        bucket, key = split_s3_path(path)
        if self._head(path) is not None:
            self._call(path, "delete_object", Bucket=bucket, Key=key)
            return
        prefix = key.rstrip("/") + "/" if key else ""
        keys = [item["Key"] for item in self._list(bucket, prefix, path)]
        if not keys:
            raise FileNotFoundError(f"{path}: no such object or directory")
        for start in range(0, len(keys), _DELETE_BATCH):
            self._call(path, "delete_objects", Bucket=bucket, Delete={
                "Objects": [{"Key": k} for k in keys[start:start + _DELETE_BATCH]],
                "Quiet": True})

    def exists(self, path: str) -> bool:
        if self._head(path) is not None:
            return True
        bucket, key = split_s3_path(path)
        prefix = key.rstrip("/") + "/" if key else ""
        page = self._call(path, "list_objects_v2", Bucket=bucket, Prefix=prefix, MaxKeys=1)
        return bool(page.get("Contents"))

    def size(self, path: str) -> int:
        head = self._head(path)
        if head is None:
            raise FileNotFoundError(f"{path}: no such object")
        return head["ContentLength"]


class _S3RangeReader(io.RawIOBase):
    """A seekable raw stream over one object, reading with ranged GETs."""

    def __init__(self, fs: S3FileSystem, path: str, length: int) -> None:
        self._fs, self._path, self._length = fs, path, length
        self._bucket, self._key = split_s3_path(path)
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        end = min(self._length, self._position + len(buffer))
        if end <= self._position:
            return 0
        answer = self._fs._call(self._path, "get_object", Bucket=self._bucket, Key=self._key,
                                Range=f"bytes={self._position}-{end - 1}")
        data = answer["Body"].read()
        buffer[:len(data)] = data
        self._position += len(data)
        return len(data)


class _S3SpoolWriter(io.RawIOBase):
    """Spools to a local temporary file; the object is uploaded, whole, on close."""

    def __init__(self, fs: S3FileSystem, path: str) -> None:
        self._fs, self._path = fs, path
        self._spool = tempfile.TemporaryFile(prefix="headrace-s3-")

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return self._spool.write(data)

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._spool.seek(0)
            self._fs.upload(self._spool, self._path)
        finally:
            self._spool.close()
            super().close()


def _status(exc: Any) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _os_error(exc: Any, path: str) -> OSError:
    """An ``OSError`` of the right kind for an S3 error answer about ``path``."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    bucket = split_s3_path(path)[0]
    if code == "NoSuchBucket":
        return FileNotFoundError(f"{path}: bucket {bucket!r} does not exist")
    if code in ("NoSuchKey", "404"):
        return FileNotFoundError(f"{path}: no such object")
    if code in ("AccessDenied", "403"):
        return PermissionError(f"{path}: access denied (check the AWS credentials)")
    return OSError(f"{path}: S3 error {code or _status(exc)}: {exc}")
