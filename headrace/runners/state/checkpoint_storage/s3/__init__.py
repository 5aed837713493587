"""Checkpoint storage in S3 or an S3-compatible store (boto3; the ``s3`` extra)."""
from headrace.runners.state.checkpoint_storage.s3.storage import (
    S3CheckpointStorage,
    parse_s3_url,
)

__all__ = ["S3CheckpointStorage", "parse_s3_url"]
