"""The performance core: part geometry, the part-buffer pool, part workers, upload/download engines,
running checksums and CKSM."""

from s3dsi.transfer.buffers import BufferPool, PartBuffer, PoolAccount
from s3dsi.transfer.checksums import ALGORITHMS, RunningChecksums, new_digest, normalize_algorithm
from s3dsi.transfer.cksm import compute_checksum
from s3dsi.transfer.download import Chunk, DownloadEngine
from s3dsi.transfer.errors import (
    DataTooFarOutOfOrder,
    FileTooLarge,
    IncompleteUpload,
    UnknownChecksumAlgorithm,
)
from s3dsi.transfer.geometry import PartPlan, PartSpan, upload_plan
from s3dsi.transfer.upload import CommittedPart, FinishedUpload, UploadEngine
from s3dsi.transfer.workers import PartWorkers

__all__ = [
    "ALGORITHMS",
    "BufferPool",
    "Chunk",
    "CommittedPart",
    "DataTooFarOutOfOrder",
    "DownloadEngine",
    "FileTooLarge",
    "FinishedUpload",
    "IncompleteUpload",
    "PartBuffer",
    "PartPlan",
    "PartSpan",
    "PartWorkers",
    "PoolAccount",
    "RunningChecksums",
    "UnknownChecksumAlgorithm",
    "UploadEngine",
    "compute_checksum",
    "new_digest",
    "normalize_algorithm",
    "upload_plan",
]
