"""botocore's exceptions, for the layers above the AWS edge.

Plans, steps and workflows catch AWS errors (a step failed, a key is not
there yet) without importing botocore: boto3 and botocore stay under
`keyhygiene.aws`, which the import-linter contracts check. The names are
botocore's own classes, so `except ClientError` catches exactly what it did.
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    ParamValidationError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.parsers import ResponseParserError

__all__ = [
    "BotoConnectionError",
    "BotoCoreError",
    "ClientError",
    "HTTPClientError",
    "ParamValidationError",
    "ResponseParserError",
]
