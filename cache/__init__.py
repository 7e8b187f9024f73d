"""The HDF5 feature cache: format (schema v1), crash-safe writing, reading, merging, inspection.

Imports neither TensorFlow nor the extract/sequence packages, so inspecting a
cache stays fast. See ``docs/cache-format.md`` for the format.
"""

from vidseq.cache.inspection import (
    CacheReport,
    describe_video,
    format_summary,
    format_video,
    inspect_cache,
    summarize,
)
from vidseq.cache.merge import merge_caches
from vidseq.cache.schema import SCHEMA_VERSION, CacheMeta, FailedRecord, VideoRecord
from vidseq.cache.store import FeatureStore
from vidseq.cache.writer import CacheWriter

__all__ = [
    "SCHEMA_VERSION",
    "CacheMeta",
    "CacheReport",
    "CacheWriter",
    "FailedRecord",
    "FeatureStore",
    "VideoRecord",
    "describe_video",
    "format_summary",
    "format_video",
    "inspect_cache",
    "merge_caches",
    "summarize",
]
