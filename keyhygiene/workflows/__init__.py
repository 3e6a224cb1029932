"""One module per workflow (rotation, enrollment, application, membership, revoke), each
independent of the others; the registry above them names every workflow's recovery."""
