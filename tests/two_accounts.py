"""Two accounts on one moto server: a person's personal and work accounts.

moto keeps one backend per account id and answers a key with the account
that created it; a role assumed in account 222222222222 (moto checks no trust
policy) gives credentials of that account, which create its admin user. So:

- personal (123456789012): christopher-laptop, christopher-work, bucket
  `personal-photos` whose policy grants the work account (a cross-account
  grant), admin user `keyhygiene-admin`;
- work (222222222222): christopher-work, christopher-laptop (the home
  computer, which the practice keeps out of work), role `deploy` trusted by
  the personal account, admin user `keyhygiene-admin`.

`write_profiles` writes `personal-admin` and `work-admin` to the test's
~/.aws/credentials and a keyhygiene config file naming both accounts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import boto3

from keyhygiene.core.model import TAG_DEVICE, TAG_HOSTNAME, TAG_PERSON

PERSONAL = "123456789012"
WORK = "222222222222"
BUCKET = "personal-photos"


@dataclass
class TwoAccounts:
    url: str
    keys: dict[str, tuple[str, str]]  # account name -> admin key id, secret

    def client(self, account: str, service: str):  # type: ignore[no-untyped-def]
        key_id, secret = self.keys[account]
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )

    def write_profiles(self, home: Path) -> Path:
        """The admin profiles and a config file of both accounts; returns the config path."""
        credentials = home / ".aws" / "credentials"
        lines = []
        for account, (key_id, secret) in self.keys.items():
            lines += [
                f"[{account}-admin]",
                f"aws_access_key_id = {key_id}",
                f"aws_secret_access_key = {secret}",
                "region = us-east-1",
                "",
            ]
        credentials.write_text("\n".join(lines))
        config = home / "keyhygiene.toml"
        config.write_text(
            f"""
[[accounts]]
name = "personal"
admin_profile = "personal-admin"
account_id = "{PERSONAL}"
endpoint_url = "{self.url}"
devices = ["christopher-laptop", "christopher-work"]

[[accounts]]
name = "work"
admin_profile = "work-admin"
account_id = "{WORK}"
endpoint_url = "{self.url}"
devices = ["christopher-work"]
"""
        )
        return config


def _device(iam, name: str, person: str, device: str, host: str) -> None:  # type: ignore[no-untyped-def]
    iam.create_user(
        UserName=name,
        Tags=[
            {"Key": TAG_PERSON, "Value": person},
            {"Key": TAG_DEVICE, "Value": device},
            {"Key": TAG_HOSTNAME, "Value": host},
        ],
    )
    iam.create_access_key(UserName=name)


def seed_two_accounts(url: str) -> TwoAccounts:
    base = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    sessions = {"personal": base}
    answer = base.client("sts", endpoint_url=url).assume_role(
        RoleArn=f"arn:aws:iam::{WORK}:role/OrganizationAccountAccessRole", RoleSessionName="seed"
    )["Credentials"]
    sessions["work"] = boto3.Session(
        aws_access_key_id=answer["AccessKeyId"],
        aws_secret_access_key=answer["SecretAccessKey"],
        aws_session_token=answer["SessionToken"],
        region_name="us-east-1",
    )
    keys = {}
    for account, session in sessions.items():
        iam = session.client("iam", endpoint_url=url)
        iam.create_user(UserName="keyhygiene-admin")
        key = iam.create_access_key(UserName="keyhygiene-admin")["AccessKey"]
        keys[account] = (key["AccessKeyId"], key["SecretAccessKey"])
    personal = sessions["personal"].client("iam", endpoint_url=url)
    _device(personal, "christopher-laptop", "christopher", "laptop", "home-laptop")
    _device(personal, "christopher-work", "christopher", "work", "ws-0042")
    work = sessions["work"].client("iam", endpoint_url=url)
    _device(work, "christopher-work", "christopher", "work", "ws-0042")
    _device(work, "christopher-laptop", "christopher", "laptop", "home-laptop")
    work.create_role(
        RoleName="deploy",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{PERSONAL}:root"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )
    s3 = sessions["personal"].client("s3", endpoint_url=url)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_policy(
        Bucket=BUCKET,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "WorkReads",
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{WORK}:root"},
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{BUCKET}/*",
                    }
                ],
            }
        ),
    )
    return TwoAccounts(url, keys)
