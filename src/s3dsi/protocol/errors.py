"""The error hierarchy every layer raises and the control layer turns into replies.

Each error carries the FTP reply code, the Globus error type keyword (``GlobusError: v=1 c=...``),
an errno and a *safe* text: nothing in an error may contain a secret, because the text goes to the
client and to the logs. Storage back ends translate their own failures into these classes in exactly
one module each (for S3: ``s3dsi.storage.s3errors``).
"""

from __future__ import annotations

import errno as _errno


class DsiError(Exception):
    """A failure with a defined reply.

    ``operation`` names what failed ("stat", "mkdir", "rmdir", "unlink", "open", ...), and becomes the
    ``GridFTP-Reason`` line as in the reference server (``System error in stat``).
    """

    code: int = 451
    globus_type: str = "INTERNAL_ERROR"
    errno: int = _errno.EIO
    default_text: str = "Internal error"

    def __init__(self, text: str | None = None, *, operation: str | None = None,
                 code: int | None = None) -> None:
        self.text = text or self.default_text
        self.operation = operation
        if code is not None:
            self.code = code
        super().__init__(self.text)

    def with_code(self, code: int) -> DsiError:
        """The same error answered with another code (RNFR answers PATH_NOT_FOUND with 500)."""
        clone = type(self)(self.text, operation=self.operation, code=code)
        return clone

    def reply_lines(self) -> list[str]:
        """Lines of the GridFTP error block, without the code prefixes."""
        reason = f"System error in {self.operation}" if self.operation else "System error"
        return [
            f"GlobusError: v=1 c={self.globus_type}",
            f"GridFTP-Errno: {self.errno}",
            f"GridFTP-Reason: {reason}",
            f"GridFTP-Error-String: {self.text}",
        ]


class PathNotFound(DsiError):
    code = 550
    globus_type = "PATH_NOT_FOUND"
    errno = _errno.ENOENT
    default_text = "No such file or directory"


class PermissionDenied(DsiError):
    code = 550
    globus_type = "PERMISSION_DENIED"
    errno = _errno.EACCES
    default_text = "Permission denied"


class CredentialsUnavailable(PermissionDenied):
    """The session's S3 credentials could not be obtained: STS refused AssumeRole, botocore's chain found
    nothing, a refresh failed. The text is the reason, for the user as much as for the log (never a
    token or key); a login that hits it is answered 530 with that reason."""

    default_text = "S3 credentials are unavailable"


class PathExists(DsiError):
    code = 553
    globus_type = "PATH_EXISTS"
    errno = _errno.EEXIST
    default_text = "File exists"


class IsADirectory(DsiError):
    code = 550
    globus_type = "IS_A_DIRECTORY"
    errno = _errno.EISDIR
    default_text = "Is a directory"


class NotADirectory(DsiError):
    code = 550
    globus_type = "NOT_A_DIRECTORY"
    errno = _errno.ENOTDIR
    default_text = "Not a directory"


class DirectoryNotEmpty(DsiError):
    code = 451
    globus_type = "INTERNAL_ERROR"
    errno = _errno.ENOTEMPTY
    default_text = "Directory not empty"


class ObjectArchived(DsiError):
    """GLACIER / DEEP_ARCHIVE object without a finished restore."""

    code = 550
    globus_type = "PERMISSION_DENIED"
    errno = _errno.EACCES
    default_text = ("Object is in an archive storage class; it must be restored "
                    "(S3 RestoreObject) before it can be read")


class RequesterPays(DsiError):
    code = 550
    globus_type = "PERMISSION_DENIED"
    errno = _errno.EACCES
    default_text = ("Bucket is configured as Requester Pays; access needs the requester to accept "
                    "the charges, which this server does not do")


class NoSpace(DsiError):
    code = 552
    globus_type = "NO_SPACE_LEFT"
    errno = _errno.ENOSPC
    default_text = "No space left on device"


class QuotaExceeded(DsiError):
    code = 552
    globus_type = "QUOTA_EXCEEDED"
    errno = _errno.EDQUOT
    default_text = "Quota exceeded"


class InvalidPath(DsiError):
    """A name S3 cannot hold (empty segment, bad bucket name, key too long, ...)."""

    code = 553
    globus_type = "INVALID_PATH"
    errno = _errno.EINVAL
    default_text = "Invalid path"


class NotSupported(DsiError):
    """A well-formed request this back end cannot honour (directory rename, APPE onto an object...)."""

    code = 504
    globus_type = "NOT_SUPPORTED"
    errno = _errno.EOPNOTSUPP
    default_text = "Operation not supported"


class ObjectChanged(DsiError):
    """The object changed while it was being read (If-Match on the ETag seen at open failed)."""

    code = 451
    globus_type = "INTERNAL_ERROR"
    errno = _errno.ESTALE
    default_text = "Object was modified during the transfer; retry"


class DataChannelError(DsiError):
    code = 426
    globus_type = "DATA_CHANNEL_COMMUNICATION_FAILURE"
    errno = _errno.ECONNRESET
    default_text = "Data connection failed"


class DataChannelRefused(DsiError):
    code = 425
    globus_type = "DATA_CHANNEL_COMMUNICATION_FAILURE"
    errno = _errno.ECONNREFUSED
    default_text = "Can't open data connection"


class TransferAborted(DsiError):
    code = 426
    globus_type = "ABORTED"
    errno = _errno.ECANCELED
    default_text = "Transfer aborted"


class BackendUnavailable(DsiError):
    """The object store could not be reached or kept failing after retries."""

    code = 451
    globus_type = "INTERNAL_ERROR"
    errno = _errno.EIO
    default_text = "Object store unavailable"
