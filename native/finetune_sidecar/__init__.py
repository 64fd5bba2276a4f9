"""Fine-Tune Studio's Python training sidecar.

The VS Code extension starts this package as a child process
(`python -m finetune_sidecar <command>`) and talks to it over the line protocol described in
`finetune_sidecar.protocol`.
"""

__version__ = "0.1.0"
