"""The pure core: the account model, ARNs, errors, limits, policy documents and AWS's
policy evaluation. No I/O, no AWS call; everything above may import it."""
