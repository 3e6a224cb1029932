"""Crash harness: run a keyhygiene command, cut it at AWS request N, run it again, check.

The question it answers (issue 12, items 5-6): after a run interrupted at any
AWS request, does *the same command run again* finish the work or cleanly undo
the first run (and say which), leaving the account complete and consistent?

How a case runs:

- one moto server in a child process (`tests/moto_server.py`), reset and seeded
  again before each case by the caller;
- the command runs in a **forked** child (no interpreter start per run): the
  child sets its environment, sends stdout/stderr to files, patches
  `botocore.httpsession.URLLib3Session.send` to count requests and apply the
  fault at request N, calls `keyhygiene.cli.main.main(argv)` and leaves with `os._exit`;
- faults (`FAULT_KINDS`): `kill` sends request N, then SIGKILLs the child
  before botocore sees the answer; `http500`, `throttle`, `denied` answer with
  a fabricated response without sending; `reset-before` raises
  ConnectionClosedError without sending; `reset-after` and `timeout` send,
  then raise ConnectionClosedError / ReadTimeoutError;
- modes: `once` (only request N fails, botocore's retries then run: this
  catches non-idempotent retries) and `from` (request N and every later one
  fail: the run must stop, roll back what it can, and leave a state the rerun
  converges from);
- time is virtual in the child: `time.sleep` and the plan engine's injectable
  `sleep`/`clock` defaults advance a clock instead of waiting, and botocore's
  adaptive rate limiter never blocks. The product keeps its own retry
  configuration (8 attempts, adaptive); AWS_MAX_ATTEMPTS / AWS_RETRY_MODE are
  set too, for the clients that do not fix their own;
- `snapshot_account` reads the account back (as an admin, through boto3), and
  `compare_states` / `consistency_problems` / `run_problems` turn what it
  finds into a list of problems (empty: converged).

Use it from a test (see tests/cli/test_convergence.py):

    server = MotoServer.start()
    server.reset(); ...seed...
    dry = run_command(argv, sandbox, env)                    # counts requests
    cut = run_command(argv, sandbox, env, Fault("kill", 5))   # cut at request 5
    again = run_command(argv, sandbox, env)                   # the same command again
"""

from __future__ import annotations

import configparser
import contextlib
import io
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, SupportsIndex

from moto_server import reset_moto_server, start_moto_server, stop_moto_server

FAULT_KINDS = ("kill", "http500", "throttle", "denied", "reset-before", "reset-after", "timeout")
MODES = ("once", "from")
# Kinds that answer without the request reaching the server.
_FABRICATED = ("http500", "throttle", "denied")
REGION = "us-east-1"
CHILD_TIMEOUT = 120.0
# Exit codes the harness itself gives a child (never the product's).
EXIT_HARNESS_ERROR = 97
EXIT_HUNG = 98


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Fault:
    """What happens to AWS request number `at` (1-based), and after it in mode `from`."""

    kind: str
    at: int
    mode: str = "once"

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.mode not in MODES:
            raise ValueError(f"unknown fault mode {self.mode!r}")
        if self.at < 1:
            raise ValueError("requests are counted from 1")

    def hits(self, number: int) -> bool:
        if self.kind == "kill" or self.mode == "once":
            return number == self.at
        return number >= self.at

    @property
    def label(self) -> str:
        return "kill" if self.kind == "kill" else f"{self.kind}/{self.mode}"


@dataclass(frozen=True)
class Request:
    """One HTTP attempt the child made (retries count as requests)."""

    number: int
    service: str
    operation: str
    fault: str = ""  # the fault applied to it, "" when it went through
    sent: bool = True  # it reached the server

    def __str__(self) -> str:
        applied = f" [{self.fault}]" if self.fault else ""
        return f"#{self.number} {self.service}:{self.operation}{applied}"


@dataclass
class Run:
    """A finished child: what it printed, its exit code and the requests it made."""

    argv: tuple[str, ...]
    code: int  # -9: killed by SIGKILL; EXIT_HUNG: stopped by the harness
    stdout: str
    stderr: str
    requests: list[Request]
    secrets: list[str]  # every SecretAccessKey that came back in a response
    seconds: float
    fault: Fault | None = None

    @property
    def killed(self) -> bool:
        return self.code == -signal.SIGKILL

    def request(self, number: int) -> Request | None:
        for request in self.requests:
            if request.number == number:
                return request
        return None

    def excerpt(self, limit: int = 1200) -> str:
        """stdout and stderr, shortened in the middle, for a failure message."""
        text = f"exit {self.code}\n--- stdout\n{self.stdout.rstrip()}\n--- stderr\n{self.stderr.rstrip()}"
        if len(text) <= limit:
            return text
        half = limit // 2
        return text[:half] + "\n[…]\n" + text[-half:]


@dataclass
class Sandbox:
    """The files of one computer: HOME with ~/.aws, and keyhygiene's state folder."""

    root: Path

    def __post_init__(self) -> None:
        (self.home / ".aws").mkdir(parents=True, exist_ok=True)
        self.state.mkdir(parents=True, exist_ok=True)
        self.scratch.mkdir(parents=True, exist_ok=True)

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def credentials(self) -> Path:
        return self.home / ".aws" / "credentials"

    @property
    def config(self) -> Path:
        return self.home / ".aws" / "config"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def scratch(self) -> Path:
        """The harness's own files (child output, request log): never the product's."""
        return self.root / "harness"

    def environment(self) -> dict[str, str]:
        return {
            "HOME": str(self.home),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.credentials),
            "AWS_CONFIG_FILE": str(self.config),
            "AWS_DEFAULT_REGION": REGION,
            "KEYHYGIENE_STATE_DIR": str(self.state),
            "KEYHYGIENE_KEYRING": "memory",
            "AWS_MAX_ATTEMPTS": "3",
            "AWS_RETRY_MODE": "standard",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def open_journals(self) -> list[Path]:
        """Journals of runs neither finished nor rolled back."""
        return sorted((self.state / "journals").glob("*.json"))

    def state_text(self) -> str:
        """Every file keyhygiene wrote in its state folder (journals, history, locks)."""
        parts = []
        for path in sorted(self.state.rglob("*")):
            if path.is_file():
                with contextlib.suppress(OSError):
                    parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)


class MotoServer:
    """The one moto server of a test session."""

    def __init__(self, process: subprocess.Popen[bytes], url: str) -> None:
        self.process = process
        self.url = url

    @classmethod
    def start(cls) -> MotoServer:
        process, url = start_moto_server()
        return cls(process, url)

    def reset(self) -> None:
        reset_moto_server(self.url)

    def stop(self) -> None:
        stop_moto_server(self.process)


# --------------------------------------------------------------------------- running


def run_command(
    argv: Sequence[str],
    sandbox: Sandbox,
    env: Mapping[str, str] | None = None,
    fault: Fault | None = None,
    *,
    timeout: float = CHILD_TIMEOUT,
    tag: str = "run",
) -> Run:
    """`keyhygiene ARGV` in a forked child, with `fault` applied to its AWS requests.

    `env` comes on top of the sandbox's environment (AWS_* and KEYHYGIENE_*
    variables of the test process are not inherited). Stdin is /dev/null, so
    the command never asks: pass --yes.
    """
    files = {name: sandbox.scratch / f"{tag}.{name}" for name in ("stdout", "stderr", "log")}
    for path in files.values():
        path.unlink(missing_ok=True)
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "KEYHYGIENE_", "PYTHON_KEYRING"))
    }
    environment.update(sandbox.environment())
    environment.update(env or {})
    warm_up()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        _child(tuple(argv), environment, files, fault)
    _CURRENT_CHILD[0] = pid
    try:
        code = _wait(pid, timeout)
    finally:
        _CURRENT_CHILD[0] = 0
    seconds = time.monotonic() - started
    requests, secrets = _read_log(files["log"])
    return Run(
        tuple(argv),
        code,
        _read(files["stdout"]),
        _read(files["stderr"]),
        requests,
        secrets,
        seconds,
        fault,
    )


_WARM: list[bool] = []


def warm_up() -> None:
    """Import every command and workflow module here, once: each forked child then
    starts with them loaded (and `_virtual_time` finds their clocks to swap)."""
    if _WARM:
        return
    from keyhygiene.cli.main import build_parser
    from keyhygiene.workflows import registry

    build_parser()
    assert registry.WORKFLOWS  # imported: every workflow's local actions are registered
    _WARM.append(True)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _wait(pid: int, timeout: float) -> int:
    """The child's exit code (-N for signal N); SIGKILLs it after `timeout` s."""
    deadline = time.monotonic() + timeout
    pidfd = -1
    with contextlib.suppress(AttributeError, OSError):
        pidfd = os.pidfd_open(pid)
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return EXIT_HUNG
            if pidfd >= 0:
                select.select([pidfd], [], [], min(left, 1.0))
            else:
                time.sleep(0.002)
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _read_log(path: Path) -> tuple[list[Request], list[str]]:
    requests, secrets = [], []
    for line in _read(path).splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut by the kill
        if "secret" in entry:
            secrets.append(entry["secret"])
        else:
            fault = entry.get("fault", "")
            requests.append(
                Request(
                    entry["n"],
                    entry["service"],
                    entry["operation"],
                    fault,
                    sent=fault not in (*_FABRICATED, "reset-before"),
                )
            )
    requests.sort(key=lambda request: request.number)
    return requests, secrets


# --------------------------------------------------------------------------- the child


def _child(
    argv: tuple[str, ...], environment: dict[str, str], files: dict[str, Path], fault: Fault | None
) -> None:
    code = EXIT_HARNESS_ERROR
    try:
        before = (sys.stdin, sys.stdout, sys.stderr)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        for fd, name in ((1, "stdout"), (2, "stderr")):
            target = os.open(files[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(target, fd)
            os.close(target)
        # Line-buffered like a terminal: what was printed before a SIGKILL is kept.
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(
            io.FileIO(1, "w", closefd=False), encoding="utf-8", line_buffering=True
        )
        sys.stderr = io.TextIOWrapper(
            io.FileIO(2, "w", closefd=False), encoding="utf-8", line_buffering=True
        )
        os.environ.clear()
        os.environ.update(environment)
        os.chdir(environment["HOME"])
        log_fd = os.open(files["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        warm_up()
        # Functions defined in this process before the fork bound the test
        # process's streams as defaults (`out=sys.stdout`): give them the child's.
        _swap_all_defaults(
            dict(zip(map(id, before), (sys.stdin, sys.stdout, sys.stderr), strict=True))
        )
        _virtual_time()
        _intercept_requests(fault, log_fd)
        from keyhygiene.cli.main import main

        try:
            code = int(main(list(argv)) or 0)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
    except BaseException:  # noqa: BLE001 - reported as the harness's own failure
        with contextlib.suppress(Exception):
            traceback.print_exc()
        code = EXIT_HARNESS_ERROR
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _virtual_time() -> None:
    """Waiting takes no time in the child, and the plan engine's clocks agree.

    `time.sleep` advances a virtual offset; the `sleep=`/`clock=` defaults of
    keyhygiene's functions (bound when they were defined) are swapped for the
    virtual ones. `time.monotonic` itself stays real (urllib3 measures its
    timeouts with it).
    """
    import botocore.retries.bucket

    real_sleep, real_monotonic = time.sleep, time.monotonic
    offset = [0.0]
    lock = threading.Lock()

    def sleep(seconds: float | SupportsIndex) -> None:
        with lock:
            offset[0] += max(0.0, float(seconds))
        real_sleep(0)

    def monotonic() -> float:
        return real_monotonic() + offset[0]

    time.sleep = sleep
    _swap_all_defaults({id(real_sleep): sleep, id(real_monotonic): monotonic})

    def acquire(self: Any, amount: int = 1, block: bool = True) -> bool:
        return True

    botocore.retries.bucket.TokenBucket.acquire = acquire  # type: ignore[method-assign]


def _swap_all_defaults(swaps: Mapping[int, Any]) -> None:
    """Replace default argument values (by identity) in keyhygiene's functions and methods."""
    for name, module in list(sys.modules.items()):
        if module is not None and name.split(".")[0] == "keyhygiene":
            for value in list(vars(module).values()):
                for func in _functions(value):
                    _swap_defaults(func, swaps)


def _functions(value: Any) -> Iterable[Any]:
    if isinstance(value, type):
        for member in vars(value).values():
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if callable(member) and hasattr(member, "__defaults__"):
                yield member
    elif callable(value) and hasattr(value, "__defaults__"):
        yield value


def _swap_defaults(func: Any, swaps: Mapping[int, Any]) -> None:
    with contextlib.suppress(AttributeError, TypeError):
        if func.__defaults__:
            func.__defaults__ = tuple(swaps.get(id(item), item) for item in func.__defaults__)
        if func.__kwdefaults__:
            func.__kwdefaults__ = {
                key: swaps.get(id(item), item) for key, item in func.__kwdefaults__.items()
            }


_SECRET_XML = re.compile(rb"<SecretAccessKey>([^<]+)</SecretAccessKey>")
_SECRET_JSON = re.compile(rb'"SecretAccessKey"\s*:\s*"([^"]+)"')


def _intercept_requests(fault: Fault | None, log_fd: int) -> None:
    """Count every HTTP attempt botocore makes; apply `fault` at its number."""
    import botocore.awsrequest
    import botocore.endpoint
    import botocore.exceptions
    import botocore.httpsession

    local = threading.local()
    lock = threading.Lock()
    count = [0]
    real_make_request = botocore.endpoint.Endpoint.make_request
    real_send = botocore.httpsession.URLLib3Session.send

    def make_request(self: Any, operation_model: Any, request_dict: Any) -> Any:
        service = operation_model.service_model
        local.operation = (service.service_name, operation_model.name, service.protocol)
        return real_make_request(self, operation_model, request_dict)

    def log(entry: Mapping[str, Any]) -> None:
        os.write(log_fd, (json.dumps(entry) + "\n").encode())

    def send(self: Any, request: Any) -> Any:
        with lock:
            count[0] += 1
            number = count[0]
        service, operation, protocol = getattr(local, "operation", ("?", "?", "?"))
        kind = fault.kind if fault is not None and fault.hits(number) else ""
        log({"n": number, "service": service, "operation": operation, "fault": kind})
        if kind in _FABRICATED:
            return _fabricated(kind, protocol, request.url)
        if kind == "reset-before":
            raise botocore.exceptions.ConnectionClosedError(endpoint_url=request.url)
        response = real_send(self, request)
        body = response.content or b""
        for pattern in (_SECRET_XML, _SECRET_JSON):
            for match in pattern.finditer(body):
                log({"secret": match.group(1).decode()})
        if kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "reset-after":
            raise botocore.exceptions.ConnectionClosedError(endpoint_url=request.url)
        if kind == "timeout":
            raise botocore.exceptions.ReadTimeoutError(endpoint_url=request.url)
        return response

    botocore.endpoint.Endpoint.make_request = make_request  # type: ignore[method-assign]
    botocore.httpsession.URLLib3Session.send = send  # type: ignore[method-assign]


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterable[bytes]:
        yield self._data


_ERRORS = {
    # kind: (status, code for query/XML services, code for JSON services, message)
    "http500": (500, "InternalFailure", "InternalFailure", "We encountered an internal error."),
    "throttle": (400, "Throttling", "ThrottlingException", "Rate exceeded"),
    "denied": (403, "AccessDenied", "AccessDeniedException", "Access denied by the harness."),
}


def _fabricated(kind: str, protocol: str, url: str) -> Any:
    """An error answer shaped as the service of the request would send it."""
    import botocore.awsrequest

    status, xml_code, json_code, message = _ERRORS[kind]
    request_id = "harness-0000"
    if protocol == "json":
        if kind == "http500":
            json_code = "KMSInternalException" if "kms" in url else json_code
        body = json.dumps({"__type": json_code, "message": message}).encode()
        headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": request_id}
    elif protocol == "rest-xml":
        code = "InternalError" if kind == "http500" else xml_code
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
        ).encode()
        headers = {"Content-Type": "application/xml", "x-amz-request-id": request_id}
    else:  # query: IAM, STS
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{xml_code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId>"
            "</ErrorResponse>"
        ).encode()
        headers = {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}
    return botocore.awsrequest.AWSResponse(url, status, headers, _Body(body))


# --------------------------------------------------------------------------- reading the account


_CLIENTS: dict[tuple[int, str], dict[str, Any]] = {}


def admin_clients(endpoint: str) -> dict[str, Any]:
    """boto3 clients on the moto server (moto lets any key read everything), made once
    per process and endpoint: a client costs tens of milliseconds to make."""
    key = (os.getpid(), endpoint)  # never a client inherited through fork
    if key not in _CLIENTS:
        import boto3

        from keyhygiene.aws.sessions import new_botocore_session

        session = boto3.Session(
            botocore_session=new_botocore_session(),
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name=REGION,
        )
        _CLIENTS[key] = {
            name: session.client(name, endpoint_url=endpoint)
            for name in ("iam", "s3", "kms", "sts")
        }
    return _CLIENTS[key]


def snapshot_account(clients: Mapping[str, Any], sandbox: Sandbox) -> dict[str, Any]:
    """The account and the computer's files as plain, comparable data.

    Volatile values are normalised: access key ids and secrets are left out
    (keys are listed by status), wall-clock timestamps become "<time>", KMS key
    ids and ARNs become their alias (or "key#N"), policy documents are
    canonical (statements by Sid, lists sorted). The raw data of semantic
    checks (members, whitelists) is kept under "_raw".
    """
    iam, s3, kms = clients["iam"], clients["s3"], clients["kms"]
    details: dict[str, list[Any]] = {
        "UserDetailList": [],
        "GroupDetailList": [],
        "RoleDetailList": [],
        "Policies": [],
    }
    for page in iam.get_paginator("get_account_authorization_details").paginate(
        Filter=["User", "Group", "Role", "LocalManagedPolicy"]
    ):
        for key in details:
            details[key].extend(page.get(key, []))
    # KMS: keys scheduled for deletion are gone for the comparison (a rollback's
    # way of deleting a key), but counted.
    aliases: dict[str, list[str]] = {}
    for alias in kms.list_aliases()["Aliases"]:
        if alias.get("TargetKeyId") and not alias["AliasName"].startswith("alias/aws/"):
            aliases.setdefault(alias["TargetKeyId"], []).append(alias["AliasName"])
    key_labels: dict[str, str] = {}
    raw_keys: dict[str, Any] = {}
    pending = 0
    unnamed = 0
    for entry in kms.list_keys()["Keys"]:
        key_id = entry["KeyId"]
        meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        if meta.get("KeyManager") == "AWS":
            continue
        if meta["KeyState"] == "PendingDeletion":
            pending += 1
            key_labels[key_id] = key_labels[meta["Arn"]] = "<key pending deletion>"
            continue
        names = sorted(aliases.get(key_id, []))
        if names:
            label = ",".join(names)
        else:
            unnamed += 1
            label = f"key#{unnamed} (no alias)"
        key_labels[key_id] = key_labels[meta["Arn"]] = label
        raw_keys[label] = {
            "id": key_id,
            "arn": meta["Arn"],
            "state": meta["KeyState"],
            "policy": kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"],
            "tags": {
                t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]
            },
        }
    kms_keys = {
        label: {
            "state": data["state"],
            "policy": _policy(data["policy"], key_labels),
            "tags": _tags(data["tags"]),
        }
        for label, data in raw_keys.items()
    }

    users: dict[str, Any] = {}
    for user in details["UserDetailList"]:
        name = user["UserName"]
        access_keys = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
        login = True
        try:
            iam.get_login_profile(UserName=name)
        except iam.exceptions.NoSuchEntityException:
            login = False
        users[name] = {
            "tags": _tags(user.get("Tags")),
            "groups": sorted(user.get("GroupList", [])),
            "inline": {
                p["PolicyName"]: _policy(p["PolicyDocument"], key_labels)
                for p in user.get("UserPolicyList", [])
            },
            "attached": sorted(p["PolicyArn"] for p in user.get("AttachedManagedPolicies", [])),
            "keys": sorted(k["Status"] for k in access_keys),
            "login_profile": login,
        }
    groups = {
        group["GroupName"]: {
            "inline": {
                p["PolicyName"]: _policy(p["PolicyDocument"], key_labels)
                for p in group.get("GroupPolicyList", [])
            },
            "attached": sorted(p["PolicyArn"] for p in group.get("AttachedManagedPolicies", [])),
            "members": sorted(n for n, u in users.items() if group["GroupName"] in u["groups"]),
        }
        for group in details["GroupDetailList"]
    }
    roles = {
        role["RoleName"]: {
            "trust": _policy(role.get("AssumeRolePolicyDocument"), key_labels),
            "tags": _tags(role.get("Tags")),
            "inline": {
                p["PolicyName"]: _policy(p["PolicyDocument"], key_labels)
                for p in role.get("RolePolicyList", [])
            },
            "attached": sorted(p["PolicyArn"] for p in role.get("AttachedManagedPolicies", [])),
        }
        for role in details["RoleDetailList"]
    }
    profiles = {
        profile["InstanceProfileName"]: sorted(r["RoleName"] for r in profile.get("Roles", []))
        for profile in iam.list_instance_profiles()["InstanceProfiles"]
    }
    policies = {}
    for policy in details["Policies"]:
        versions = policy.get("PolicyVersionList", [])
        default = [v for v in versions if v.get("IsDefaultVersion")]
        name = policy.get("PolicyName") or policy["Arn"].rsplit("/", 1)[-1]  # moto omits it
        policies[name] = {
            "document": _policy(default[0]["Document"], key_labels) if default else None,
            "versions": len(versions),
            "attachments": policy.get("AttachmentCount"),
        }

    raw_buckets: dict[str, Any] = {}
    buckets: dict[str, Any] = {}
    for bucket in s3.list_buckets()["Buckets"]:
        name = bucket["Name"]
        policy = _optional(s3.get_bucket_policy, name, "Policy")
        tags = _optional(s3.get_bucket_tagging, name, "TagSet") or []
        encryption = _optional(s3.get_bucket_encryption, name, "ServerSideEncryptionConfiguration")
        block = _optional(s3.get_public_access_block, name, "PublicAccessBlockConfiguration")
        raw_buckets[name] = {"policy": policy, "tags": {t["Key"]: t["Value"] for t in tags}}
        buckets[name] = {
            "policy": _policy(policy, key_labels) if policy else None,
            "tags": _tags(tags),
            "encryption": _relabel(encryption, key_labels),
            "public_access_block": block,
        }

    return {
        "users": users,
        "groups": groups,
        "roles": roles,
        "instance_profiles": profiles,
        "managed_policies": policies,
        "kms_keys": kms_keys,
        # Not compared: a key pending deletion is how a rollback deletes one (KMS
        # waits at least 7 days), so a rerun after a rolled-back run has one
        # more than an uninterrupted run, and neither can use it.
        "_kms_keys_pending_deletion": pending,
        "buckets": buckets,
        "files": {
            "credentials": _file_text(sandbox.credentials, credentials=True),
            "config": _file_text(sandbox.config, credentials=False),
        },
        "_raw": {"keys": raw_keys, "buckets": raw_buckets, "roles": details["RoleDetailList"]},
    }


def _optional(read: Callable[..., Any], bucket: str, member: str) -> Any:
    """A bucket's setting, None when it has none (S3 answers an error then)."""
    from botocore.exceptions import ClientError

    try:
        return read(Bucket=bucket)[member]
    except ClientError:
        return None


_TIMESTAMP = re.compile(
    r"\b(\d{4})-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?\b"
)


def _mask_times(text: str) -> str:
    """Wall-clock timestamps (this century's, not the tests' fixed far future) → "<time>"."""
    return _TIMESTAMP.sub(lambda m: "<time>" if int(m.group(1)) < 2090 else m.group(0), text)


def _tags(raw: Any) -> dict[str, str]:
    pairs: Iterable[tuple[Any, Any]]
    if isinstance(raw, Mapping):
        pairs = raw.items()
    else:
        pairs = (
            (t.get("Key", t.get("TagKey")), t.get("Value", t.get("TagValue"))) for t in raw or []
        )
    return {str(k): _mask_times(str(v)) for k, v in sorted(pairs)}


def _policy(raw: Any, labels: Mapping[str, str] | None = None) -> Any:
    """A policy document in canonical form, statements keyed by Sid."""
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            document = json.loads(raw)
        except ValueError:
            try:
                document = json.loads(urllib.parse.unquote(raw))
            except ValueError:
                return {"<not JSON>": raw}
    else:
        document = raw
    document = _relabel(document, labels or {})
    if not isinstance(document, dict):
        return document
    out = {k: _canonical(v) for k, v in document.items() if k != "Statement"}
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    keyed: dict[str, Any] = {}
    for index, statement in enumerate(statements):
        sid = statement.get("Sid") if isinstance(statement, dict) else None
        key = f"Sid={sid}" if sid else f"#{index}"
        while key in keyed:
            key += "'"
        keyed[key] = _canonical(statement)
    out["Statement"] = keyed
    return out


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        items = [_canonical(v) for v in value]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(value, str):
        return _mask_times(value)
    return value


def _relabel(value: Any, labels: Mapping[str, str]) -> Any:
    if not labels or value is None:
        return value
    text = json.dumps(value)
    for raw in sorted(labels, key=len, reverse=True):  # ARNs before the ids they contain
        text = text.replace(raw, f"<kms:{labels[raw]}>")
    return json.loads(text)


_KEY_LINE = re.compile(
    r"^(\s*(?:aws_access_key_id|aws_secret_access_key|aws_session_token)\s*=\s*)(\S.*)$",
    re.MULTILINE,
)


def _file_text(path: Path, *, credentials: bool) -> str | None:
    if not path.exists():
        return None
    text = path.read_text(errors="replace")
    if credentials:
        text = _KEY_LINE.sub(lambda m: m.group(1) + "<value>", text)
    return text


# --------------------------------------------------------------------------- checks


def compare_states(expected: Mapping[str, Any], found: Mapping[str, Any]) -> list[str]:
    """Differences between two snapshots, one line each ("where: expected …, found …")."""
    problems: list[str] = []
    _diff(
        {k: v for k, v in expected.items() if not k.startswith("_")},
        {k: v for k, v in found.items() if not k.startswith("_")},
        "",
        problems,
    )
    return problems


def _diff(expected: Any, found: Any, where: str, out: list[str]) -> None:
    if isinstance(expected, dict) and isinstance(found, dict):
        for key in sorted(set(expected) | set(found), key=str):
            path = f"{where}.{key}" if where else str(key)
            if key not in found:
                out.append(f"{path}: missing (expected {_short(expected[key])})")
            elif key not in expected:
                out.append(f"{path}: unexpected {_short(found[key])}")
            else:
                _diff(expected[key], found[key], path, out)
        return
    if expected != found:
        if isinstance(expected, str) and isinstance(found, str) and "\n" in expected + found:
            out.append(f"{where}: expected\n{_indent(expected)}\n    found\n{_indent(found)}")
        else:
            out.append(f"{where}: expected {_short(expected)}, found {_short(found)}")


def _short(value: Any, limit: int = 300) -> str:
    text = (
        json.dumps(value, sort_keys=True, default=str)
        if not isinstance(value, str)
        else repr(value)
    )
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _indent(text: str | None) -> str:
    return "\n".join("      " + line for line in (text or "<no file>").splitlines())


@dataclass(frozen=True)
class Computer:
    """A computer whose IAM user must end with exactly one working key, in `profile`."""

    user: str
    profile: str


def consistency_problems(
    state: Mapping[str, Any],
    clients: Mapping[str, Any],
    sandbox: Sandbox,
    computers: Sequence[Computer] = (),
) -> list[str]:
    """What is wrong whatever the workflow: whitelists that differ from the group
    members, a computer without exactly one working key, files botocore cannot
    read, journals left open."""
    from keyhygiene.core.model import TAG_GROUPS, groups_from_tag
    from keyhygiene.core.policy_documents import whitelisted_principals

    problems: list[str] = []
    raw = state["_raw"]
    account = clients["sts"].get_caller_identity()["Account"]

    def expected_whitelist(tag: str | None) -> set[str]:
        names = set(groups_from_tag(tag))
        wanted = {
            f"arn:aws:iam::{account}:user/{user}"
            for group in names
            for user in state["groups"].get(group, {}).get("members", [])
        }
        for role in raw["roles"]:
            if names & set(groups_from_tag(_tags(role.get("Tags")).get(TAG_GROUPS))):
                wanted.add(role["Arn"])
        return wanted

    for name, bucket in raw["buckets"].items():
        tag = bucket["tags"].get(TAG_GROUPS)
        if tag:
            listed = set(whitelisted_principals(bucket["policy"]))
            _whitelist_problem(f"bucket {name}", expected_whitelist(tag), listed, problems)
    for label, key in raw["keys"].items():
        tag = key["tags"].get(TAG_GROUPS)
        if tag:
            listed = set(whitelisted_principals(key["policy"]))
            _whitelist_problem(f"KMS key {label}", expected_whitelist(tag), listed, problems)

    problems.extend(file_problems(sandbox))
    for computer in computers:
        problems.extend(_working_key_problems(computer, clients, sandbox))
    for path in sandbox.open_journals():
        problems.append(f"journal left open: {path.name} ({_journal_summary(path)})")
    return problems


def _whitelist_problem(where: str, wanted: set[str], listed: set[str], out: list[str]) -> None:
    if wanted != listed:
        missing = sorted(wanted - listed)
        extra = sorted(listed - wanted)
        out.append(
            f"{where}: whitelist differs from the group members"
            + (f"; missing {missing}" if missing else "")
            + (f"; not a member {extra}" if extra else "")
        )


def _journal_summary(path: Path) -> str:
    try:
        data = json.loads(path.read_text())
        steps = data.get("steps", {})
        statuses = {sid: record.get("status") for sid, record in steps.items()}
        busy = [sid for sid, status in statuses.items() if status not in ("done", "pending")]
        return (
            f"{data['plan']['kind']}, state {data.get('state')}, "
            f"{sum(s == 'done' for s in statuses.values())}/{len(statuses)} done"
            + (f", {', '.join(f'{s}={statuses[s]}' for s in busy)}" if busy else "")
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "unreadable"


def file_problems(sandbox: Sandbox) -> list[str]:
    """The credentials and config files must parse as botocore reads them."""
    import botocore.configloader
    import botocore.exceptions

    problems = []
    for path in (sandbox.credentials, sandbox.config):
        if not path.exists():
            continue
        try:
            botocore.configloader.raw_config_parse(str(path))
            parser = configparser.RawConfigParser()
            parser.read(path)
        except (botocore.exceptions.ConfigParseError, configparser.Error) as exc:
            problems.append(f"{path.name} cannot be parsed: {type(exc).__name__}: {exc}")
    if sandbox.credentials.exists() and sandbox.credentials.stat().st_mode & 0o077:
        problems.append(f"credentials file mode is {oct(sandbox.credentials.stat().st_mode)}")
    return problems


def _working_key_problems(
    computer: Computer, clients: Mapping[str, Any], sandbox: Sandbox
) -> list[str]:
    import botocore.session

    from keyhygiene.aws.sessions import shared_loader

    iam = clients["iam"]
    where = f"computer {computer.user} (profile {computer.profile})"
    try:
        keys = iam.list_access_keys(UserName=computer.user)["AccessKeyMetadata"]
    except iam.exceptions.NoSuchEntityException:
        return [f"{where}: the IAM user does not exist"]
    statuses = {key["AccessKeyId"]: key["Status"] for key in keys}
    session = botocore.session.Session(profile=computer.profile)
    session.register_component("data_loader", shared_loader())
    session.set_config_variable("credentials_file", str(sandbox.credentials))
    session.set_config_variable("config_file", str(sandbox.config))
    try:
        credentials = session.get_credentials()
    except Exception as exc:  # noqa: BLE001 - any failure to read is the finding
        return [f"{where}: botocore cannot read its credentials ({type(exc).__name__})"]
    problems = []
    held = credentials.access_key if credentials is not None else None
    if len(statuses) != 1:
        problems.append(
            f"{where}: {len(statuses)} access keys on the user ({statuses_text(statuses, held)})"
        )
    if held is None:
        problems.append(f"{where}: no key in the profile")
        return problems
    if statuses.get(held) != "Active":
        problems.append(
            f"{where}: the profile's key …{held[-4:]} is "
            f"{statuses.get(held, 'not a key of the user')}"
        )
        return problems
    sts = session.create_client("sts", region_name=REGION, endpoint_url=iam.meta.endpoint_url)
    try:
        arn = sts.get_caller_identity()["Arn"]
    except Exception as exc:  # noqa: BLE001
        return [*problems, f"{where}: the profile's key does not work ({type(exc).__name__})"]
    if not arn.endswith(f":user/{computer.user}"):
        problems.append(f"{where}: the profile's key answers as {arn}")
    return problems


def statuses_text(statuses: Mapping[str, str], held: str | None) -> str:
    return ", ".join(
        f"…{key[-4:]} {status}{' (in the profile)' if key == held else ''}"
        for key, status in sorted(statuses.items())
    )


def run_problems(run: Run, secrets: Iterable[str], sandbox: Sandbox) -> list[str]:
    """What a run must never do, faulted or not: a traceback, a secret in its output or
    in the state folder, a harness error, a hang."""
    problems = []
    name = "faulted run" if run.fault else "run"
    if run.code == EXIT_HUNG:
        problems.append(f"{name} hung (stopped after {CHILD_TIMEOUT:.0f} s)")
    if run.code == EXIT_HARNESS_ERROR:
        problems.append(f"{name}: the harness failed in the child: {run.stderr[-800:]}")
    for stream, text in (("stdout", run.stdout), ("stderr", run.stderr)):
        if "Traceback" in text:
            problems.append(f"{name}: a Traceback on {stream}")
    journals = sandbox.state_text()
    for secret in {s for s in secrets if s and len(s) >= 8}:
        for where, text in (
            ("stdout", run.stdout),
            ("stderr", run.stderr),
            ("state folder", journals),
        ):
            if secret in text:
                problems.append(f"{name}: a secret access key appears in its {where}")
    return problems


# Words that name each fault's cause in a message.
_CAUSE_WORDS = {
    "http500": ("internal", "500", "service error", "server error"),
    "throttle": ("throttl", "rate exceeded", "too many", "slow down"),
    "denied": ("denied", "lacks", "not authorized", "permission"),
    "reset-before": ("connection", "closed", "could not reach", "unreachable", "network"),
    "reset-after": ("connection", "closed", "could not reach", "unreachable", "network"),
    "timeout": ("timeout", "timed out", "time out", "did not answer in time"),
}


def failure_message_problems(run: Run) -> list[str]:
    """A faulted run that failed (not killed) must say so on stderr in one clear
    `keyhygiene: …` line; when the fault lasted (mode `from`, or a denial, which
    botocore does not retry), that line must name its cause."""
    fault = run.fault
    if fault is None or run.code in (0, -signal.SIGKILL, EXIT_HUNG, EXIT_HARNESS_ERROR):
        return []
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    messages = [line for line in lines if line.startswith("keyhygiene:")]
    if not messages:
        reported = [
            line.strip()
            for line in run.stdout.splitlines()
            if "failed:" in line or "FAILED" in line
        ]
        where = f"; stdout says: {reported[0][:160]!r}" if reported else ""
        got = f"stderr holds {lines[0][:160]!r}" if lines else "nothing on stderr"
        return [f"exit {run.code} with {got} (no `keyhygiene: …` line){where}"]
    if fault.mode == "from" or fault.kind == "denied":
        text = " ".join(lines).lower()
        if not any(word in text for word in _CAUSE_WORDS[fault.kind]):
            return [
                f"exit {run.code}; stderr does not name the cause ({fault.kind}): {messages[0][:200]!r}"
            ]
    return []


# --------------------------------------------------------------------------- workflows and cases


@dataclass
class Seeded:
    """What a seed leaves for the runs: their extra environment and the secrets it made."""

    env: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Workflow:
    """A command to cut: its argv (given the endpoint; the rerun is the same command),
    the account it starts from, and the computers that must end with one working key."""

    name: str
    argv: Callable[[str], tuple[str, ...]]
    seed: Callable[[str, Sandbox], Seeded]
    computers: tuple[Computer, ...] = ()


@contextlib.contextmanager
def isolated_environment(sandbox: Sandbox) -> Iterator[None]:
    """os.environ as tests/conftest.py's `isolated_aws` sets it, on the sandbox, for
    seeding in this process (so no seed reads or writes a real ~/.aws); restored after."""
    saved = dict(os.environ)
    try:
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
            os.environ.pop(name, None)
        os.environ.update(sandbox.environment())
        os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass
class Outcome:
    """One case: the faulted run, the rerun (None when none was needed), problems.

    `problems` are convergence problems (the account, the files, the rerun);
    `message_problems` are about what the faulted run said when it failed.
    """

    workflow: str
    fault: Fault
    first: Run
    rerun: Run | None = None
    problems: list[str] = field(default_factory=list)
    message_problems: list[str] = field(default_factory=list)
    changed_nothing: bool = False  # the cut came before anything changed: no rerun needed
    seconds: float = 0.0

    @property
    def at(self) -> Request | None:
        return self.first.request(self.fault.at)

    def report(self, problems: Sequence[str] | None = None) -> str:
        at = self.at
        what = str(at) if at else f"#{self.fault.at} (the run made only {len(self.first.requests)})"
        lines = [f"{self.workflow}: {self.fault.label} at request {what}"]
        lines.append("first run: " + self.first.excerpt(900).replace("\n", "\n    "))
        if self.rerun is not None:
            lines.append("rerun: " + self.rerun.excerpt(1500).replace("\n", "\n    "))
        elif self.changed_nothing:
            lines.append("no rerun: the first run changed nothing (the rerun is the dry run)")
        lines.append("problems:")
        lines.extend(
            f"  - {problem}" for problem in (self.problems if problems is None else problems)
        )
        return "\n".join(lines)


def said_which(run: Run) -> bool:
    """The rerun says it found the interrupted run (and then that it finished or undid it)."""
    return "interrupted" in (run.stdout + run.stderr).lower()


_READS = ("Get", "List", "Describe", "Head")


def is_change(operation: str) -> bool:
    """An AWS operation that changes the account (GenerateCredentialReport does not)."""
    return not operation.startswith(_READS) and operation != "GenerateCredentialReport"


def changes_sent(run: Run) -> list[Request]:
    """The requests of `run` that could change the account and reached the server."""
    return [r for r in run.requests if r.sent and is_change(r.operation)]


def local_fingerprint(sandbox: Sandbox) -> dict[str, bytes]:
    """The computer's files and keyhygiene's state folder (empty lock files aside)."""
    found = {}
    for path in (sandbox.credentials, sandbox.config):
        if path.exists():
            found[str(path)] = path.read_bytes()
    for path in sorted(sandbox.state.rglob("*")):
        if path.is_file() and not (path.suffix == ".lock" and path.stat().st_size == 0):
            found[str(path)] = path.read_bytes()
    return found


class Lab:
    """Runs cases on one moto server: seed, cut, rerun, check.

    A cut that came before any change reached AWS (the request log says which
    requests were sent) and left the files and the state folder as seeded needs
    no rerun (it would be the dry run), and leaves the account as seeded: the
    next case of the same workflow starts from it without seeding again.
    """

    def __init__(self, server: MotoServer, base: Path) -> None:
        self.server = server
        self.base = base
        self.clients = admin_clients(server.url)
        self._pristine: tuple[str, Sandbox, Seeded, dict[str, bytes]] | None = None
        self._cases = 0

    def seed(self, workflow: Workflow, sandbox: Sandbox) -> Seeded:
        self.server.reset()
        self._pristine = None
        with isolated_environment(sandbox):
            return workflow.seed(self.server.url, sandbox)

    def dry_run(self, workflow: Workflow) -> tuple[Run, dict[str, Any], list[str]]:
        """The unfaulted run: its requests, the state it leaves, and its own problems."""
        sandbox = self._sandbox(f"dry-{workflow.name}")
        seeded = self.seed(workflow, sandbox)
        run = run_command(workflow.argv(self.server.url), sandbox, seeded.env, tag="dry")
        state = snapshot_account(self.clients, sandbox)
        problems = [] if run.code == 0 else [f"the unfaulted run exited {run.code}"]
        problems += consistency_problems(state, self.clients, sandbox, workflow.computers)
        problems += run_problems(run, seeded.secrets + run.secrets, sandbox)
        return run, state, problems

    def run_case(self, workflow: Workflow, fault: Fault, expected: Mapping[str, Any]) -> Outcome:
        started = time.monotonic()
        if self._pristine is not None and self._pristine[0] == workflow.name:
            _, sandbox, seeded, fingerprint = self._pristine
        else:
            sandbox = self._sandbox(workflow.name)
            seeded = self.seed(workflow, sandbox)
            fingerprint = local_fingerprint(sandbox)
        self._pristine = None
        argv = workflow.argv(self.server.url)
        tag = f"{fault.label.replace('/', '-')}-{fault.at}"
        first = run_command(argv, sandbox, seeded.env, fault, tag=f"{tag}-first")
        outcome = Outcome(workflow.name, fault, first)
        secrets = seeded.secrets + first.secrets
        outcome.problems += run_problems(first, secrets, sandbox)
        outcome.message_problems += failure_message_problems(first)
        if first.code == 0:
            # The fault was absorbed (a retry, a step that may fail): the run must
            # then really have done all it says it did.
            found = self.check(workflow, expected, sandbox)
            outcome.problems += [f"the faulted run exited 0, but {problem}" for problem in found]
        elif not changes_sent(first) and local_fingerprint(sandbox) == fingerprint:
            outcome.changed_nothing = True
            self._pristine = (workflow.name, sandbox, seeded, fingerprint)
        else:
            left_open = sandbox.open_journals()
            rerun = run_command(argv, sandbox, seeded.env, tag=f"{tag}-rerun")
            outcome.rerun = rerun
            outcome.problems += run_problems(rerun, secrets + rerun.secrets, sandbox)
            if rerun.code != 0:
                outcome.problems.append(f"the rerun exited {rerun.code}")
            if left_open and not said_which(rerun):
                outcome.problems.append(
                    "the first run left a journal open and the rerun did not say it "
                    "finished or undid it"
                )
            outcome.problems += self.check(workflow, expected, sandbox)
        outcome.seconds = time.monotonic() - started
        return outcome

    def check(self, workflow: Workflow, expected: Mapping[str, Any], sandbox: Sandbox) -> list[str]:
        state = snapshot_account(self.clients, sandbox)
        return compare_states(expected, state) + consistency_problems(
            state, self.clients, sandbox, workflow.computers
        )

    def _sandbox(self, name: str) -> Sandbox:
        self._cases += 1
        return Sandbox(self.base / f"{self._cases:04d}-{name}")


# --------------------------------------------------------------------------- lanes


class Lanes:
    """Cases run in `count` worker processes, each with its own moto server and Lab.

    The workers are forked from this (single-threaded) process, so they share
    its imports, its workflows and the expected states; a job is any picklable,
    hashable value, `work(lab, job)` its picklable result. `submit` gives each
    lane its whole list at once (`lane_of` keeps related jobs in one lane, in
    order); `result` waits for one. `close` stops the workers (by pid).
    """

    def __init__(self, count: int, base: Path, work: Callable[[Lab, Any], Any]) -> None:
        import multiprocessing
        import multiprocessing.connection

        self._wait = multiprocessing.connection.wait
        self._workers: list[tuple[int, Any]] = []
        self._results: dict[Any, Any] = {}
        self._pending: set[Any] = set()
        for index in range(count):
            parent, child = multiprocessing.Pipe()
            pid = os.fork()
            if pid == 0:
                parent.close()
                _lane(child, base / f"lane{index}", work)
            child.close()
            self._workers.append((pid, parent))

    def submit(self, jobs: Sequence[Any], lane_of: Callable[[Any], int]) -> None:
        lists: list[list[Any]] = [[] for _ in self._workers]
        for job in jobs:
            lists[lane_of(job) % len(self._workers)].append(job)
            self._pending.add(job)
        for (_, conn), mine in zip(self._workers, lists, strict=True):
            conn.send(mine)  # one message: the worker reads it at once

    def result(self, job: Any) -> Any:
        while job not in self._results:
            if job not in self._pending:
                raise KeyError(job)
            ready = self._wait([conn for _, conn in self._workers], timeout=CHILD_TIMEOUT * 3)
            if not ready:
                raise TimeoutError("no lane of the crash harness answered for 6 minutes")
            for conn in ready:
                try:
                    done, value = conn.recv()  # type: ignore[union-attr, call-arg]
                except EOFError:
                    raise RuntimeError("a lane of the crash harness died") from None
                self._pending.discard(done)
                self._results[done] = value
        return self._results.pop(job)

    def close(self) -> None:
        for pid, conn in self._workers:
            if self._pending:  # interrupted: the workers may be blocked sending
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            else:
                with contextlib.suppress(OSError):
                    conn.send(None)
        for pid, conn in self._workers:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            conn.close()
        self._workers = []


_CURRENT_CHILD = [0]  # the pid of the command a lane is running, 0 when none


def _lane(conn: Any, base: Path, work: Callable[[Lab, Any], Any]) -> None:
    """A worker: its own moto server; runs its jobs, then waits for None. Never returns."""
    code = 0
    server: MotoServer | None = None

    def stop(*_: Any) -> None:
        if _CURRENT_CHILD[0]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(_CURRENT_CHILD[0], signal.SIGKILL)
        if server is not None:
            server.stop()
        os._exit(1)

    try:
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        base.mkdir(parents=True, exist_ok=True)
        server = MotoServer.start()
        lab = Lab(server, base)
        for job in conn.recv():
            try:
                value = work(lab, job)
            except Exception as exc:  # noqa: BLE001 - the test that asked reports it
                value = HarnessFailure(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            conn.send((job, value))
        while conn.recv() is not None:
            pass
    except BaseException:  # noqa: BLE001 - EOF: the test process went away
        code = 1
    finally:
        with contextlib.suppress(Exception):
            if server is not None:
                server.stop()
        os._exit(code)


@dataclass(frozen=True)
class HarnessFailure:
    """A job that failed in the harness itself (not in the product)."""

    text: str
