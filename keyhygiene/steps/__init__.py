"""Plan steps shared by several workflows: whitelist policies, group policies and MFA
devices."""
