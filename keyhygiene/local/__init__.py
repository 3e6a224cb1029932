"""This computer's files: ~/.aws/credentials and config, the keyring, locks, the state
folder, scheduled rotation and cached MFA sessions. No AWS call."""
