"""The audit: the findings model (`findings`), the rules that produce findings
(`rules` for the account, `policy_rules` for the documents, `local_checks` for
this computer), the `runner` that applies every rule, and the `fixes` that
answer findings. The model knows no rule; only the runner knows both."""
