"""The kernel sandbox: a confined ipykernel per completion, the host end of its bridge, its run directory."""
