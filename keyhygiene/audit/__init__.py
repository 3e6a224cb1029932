"""The audit: findings, the rules that produce them (account, policies, this computer)
and the fixes that answer them."""
