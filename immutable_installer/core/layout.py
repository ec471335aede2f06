"""Names of the files every generation holds: the builder writes them, the verifier and status read them."""

RECEIPT = "installer-receipt.json"
TORCH_LOCK = ".torch_lock"
MANIFEST_COPY = "installer-manifest.json"  # the exact manifest bytes a generation was built from
