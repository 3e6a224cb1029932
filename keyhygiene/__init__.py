"""keyhygiene: one IAM user and one access key per computer, kept clean."""

__version__ = "0.2.0"
