"""File compression, applied on top of any filesystem: the compression types, chosen by file
extension unless a :class:`CompressionTypes` value says otherwise, and the (de)compressing
streams and whole-buffer compression behind :mod:`headrace.io.filesystems`.

>>> import gzip, io
>>> raw = io.BytesIO()
>>> with compressed_stream(raw, CompressionTypes.resolve("a.gz", "auto"), "wb") as f:
...     _ = f.write(b"hello")
>>> raw.closed
True
"""
from __future__ import annotations

import bz2
import gzip
import lzma
from typing import IO

# Level 6 is zlib's default and Beam's; Python's gzip default (9) is much slower.
_GZIP_LEVEL = 6


class CompressionTypes:
    """Compression of a file, named as in Beam's ``CompressionTypes``.

    ``AUTO`` picks the compression from the file extension: ``.gz`` is gzip,
    ``.bz2`` bzip2, ``.xz`` / ``.lzma`` lzma, anything else uncompressed.

    >>> CompressionTypes.detect_compression_type("logs/part-0.gz")
    'gzip'
    >>> CompressionTypes.detect_compression_type("logs/part-0.txt")
    'uncompressed'
    """

    AUTO = "auto"
    UNCOMPRESSED = "uncompressed"
    GZIP = "gzip"
    BZIP2 = "bzip2"
    LZMA = "lzma"
    # Beam names these; they are recognised so that using them fails clearly.
    DEFLATE = "deflate"
    ZSTD = "zstd"

    _SUPPORTED = (AUTO, UNCOMPRESSED, GZIP, BZIP2, LZMA)
    _BY_SUFFIX = (
        (".gz", GZIP), (".bz2", BZIP2), (".xz", LZMA), (".lzma", LZMA),
        (".deflate", DEFLATE), (".zst", ZSTD), (".zstd", ZSTD),
    )

    @classmethod
    def is_valid_compression_type(cls, compression_type: object) -> bool:
        """Whether ``compression_type`` is one headrace can read and write.

        >>> CompressionTypes.is_valid_compression_type("gzip")
        True
        """
        return compression_type in cls._SUPPORTED

    @classmethod
    def detect_compression_type(cls, path: str) -> str:
        """The compression implied by the extension of ``path``.

        >>> CompressionTypes.detect_compression_type("x.BZ2")
        'bzip2'
        """
        lowered = path.lower()
        for suffix, compression_type in cls._BY_SUFFIX:
            if lowered.endswith(suffix):
                return compression_type
        return cls.UNCOMPRESSED

    @classmethod
    def resolve(cls, path: str, compression_type: str) -> str:
        """The concrete compression for ``path``: ``AUTO`` resolved, unsupported types refused.

        >>> CompressionTypes.resolve("a.gz", "auto")
        'gzip'
        >>> CompressionTypes.resolve("a.gz", "uncompressed")
        'uncompressed'
        """
        if compression_type not in cls._SUPPORTED:
            raise ValueError(
                f"compression_type must be one of {', '.join(cls._SUPPORTED)}; "
                f"got {compression_type!r} for {path!r}")
        if compression_type == cls.AUTO:
            compression_type = cls.detect_compression_type(path)
            if compression_type not in cls._SUPPORTED:
                raise ValueError(
                    f"{path!r} looks {compression_type}-compressed (by its extension), which "
                    f"headrace does not support; pass compression_type explicitly to override")
        return compression_type


class _CodecStream:
    """A (de)compressing stream that also closes the raw stream under it.

    gzip, bz2 and lzma leave a caller-supplied file object open on close().
    """

    def __init__(self, codec: IO[bytes], raw: IO[bytes]) -> None:
        self._codec = codec
        self._raw = raw

    def __getattr__(self, name: str):
        return getattr(self._codec, name)

    def close(self) -> None:
        try:
            self._codec.close()
        finally:
            self._raw.close()

    def __enter__(self) -> "_CodecStream":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def compressed_stream(raw: IO[bytes], compression_type: str, mode: str) -> IO[bytes]:
    """``raw`` itself if uncompressed, else a stream (de)compressing it (mode ``rb`` / ``wb``)
    that closes ``raw`` when it is closed; ``compression_type`` must be concrete (resolved)."""
    if compression_type == CompressionTypes.UNCOMPRESSED:
        return raw
    if compression_type == CompressionTypes.GZIP:
        codec = gzip.GzipFile(
            fileobj=raw, mode=mode, filename="", mtime=0, compresslevel=_GZIP_LEVEL)
    elif compression_type == CompressionTypes.BZIP2:
        codec = bz2.BZ2File(raw, mode=mode)
    else:
        codec = lzma.LZMAFile(raw, mode=mode)
    return _CodecStream(codec, raw)


def compress(data: bytes, compression_type: str) -> bytes:
    """``data`` as one complete compressed stream (concatenated streams stay readable).

    >>> import gzip
    >>> gzip.decompress(compress(b"a", "gzip") + compress(b"b", "gzip"))
    b'ab'
    """
    if compression_type == CompressionTypes.UNCOMPRESSED:
        return data
    if compression_type == CompressionTypes.GZIP:
        return gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=0)
    if compression_type == CompressionTypes.BZIP2:
        return bz2.compress(data)
    if compression_type == CompressionTypes.LZMA:
        return lzma.compress(data)
    raise ValueError(f"compress() needs a concrete compression type, not {compression_type!r}")
