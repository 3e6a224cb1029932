"""The AWS edge, the only importer of boto3 and botocore: sessions and connections, the
account inventory and the wait for IAM's eventual consistency."""
