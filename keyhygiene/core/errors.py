"""Errors a person can act on.

Every error that reaches the user is a `KeyHygieneError` whose message says
what happened and what to do. Messages never hold a secret: they are built
from names, ARNs, key ids and AWS error codes only.
"""

from __future__ import annotations


class KeyHygieneError(Exception):
    """An error with a message meant for the person running keyhygiene."""

    exit_code = 3

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message


class BadInput(KeyHygieneError):
    """The request cannot be carried out as asked; nothing was changed."""

    exit_code = 2


class ConnectionProblem(KeyHygieneError):
    """No credentials, an expired token, an unreachable endpoint."""

    exit_code = 2


class AwsProblem(KeyHygieneError):
    """AWS refused or failed a call."""

    exit_code = 3

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        code: str | None = None,
        operation: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.operation = operation


# S3 API operations whose IAM action has another name.
_S3_ACTIONS = {
    "GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "GetBucketTagging": "s3:GetBucketTagging",
    "PutBucketTagging": "s3:PutBucketTagging",
    "ListBuckets": "s3:ListAllMyBuckets",
    "HeadBucket": "s3:ListBucket",
}
_ACCESS_DENIED = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
}


def permission_for(service: str, operation: str) -> str:
    """The IAM action a call needs: ("iam", "CreateAccessKey") -> "iam:CreateAccessKey"."""
    if service == "s3" and operation in _S3_ACTIONS:
        return _S3_ACTIONS[operation]
    return f"{service}:{operation}"


def from_client_error(exc: Exception, *, service: str, doing: str) -> AwsProblem:
    """Turn a botocore ClientError into a message a person can act on.

    `doing` is a short phrase ("creating the new access key"). Only the error
    code, the AWS message and names go into the text: AWS error messages never
    contain secret keys, and request parameters are not included.
    """
    response = getattr(exc, "response", {}) or {}
    error = response.get("Error", {}) or {}
    code = str(error.get("Code", type(exc).__name__))
    aws_message = str(error.get("Message", "")).strip()
    operation = getattr(exc, "operation_name", None) or ""
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    if code in _ACCESS_DENIED or status == 403:
        if code in ("InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch"):
            return AwsProblem(
                f"AWS did not accept the credentials while {doing} ({code}).",
                hint="Check the profile's access key: it may have been deleted or mistyped.",
                code=code,
                operation=operation,
            )
        permission = permission_for(service, operation) if operation else f"{service}:*"
        return AwsProblem(
            f"Access denied while {doing}: the identity in use lacks {permission}.",
            hint=f"Grant {permission} to that identity, or use --admin-profile with one that has it.",
            code=code,
            operation=operation,
        )
    if code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired"):
        return AwsProblem(
            f"The session token has expired while {doing}.",
            hint="Refresh the profile's temporary credentials (for example `aws sso login`) and retry.",
            code=code,
            operation=operation,
        )
    if code in ("Throttling", "ThrottlingException", "TooManyRequestsException", "SlowDown"):
        return AwsProblem(
            f"AWS kept throttling the requests while {doing}, even after retries.",
            hint="Wait a minute and run the command again.",
            code=code,
            operation=operation,
        )
    detail = f": {aws_message}" if aws_message else ""
    return AwsProblem(
        f"AWS refused {operation or 'a call'} while {doing} ({code}{detail}).",
        code=code,
        operation=operation,
    )
