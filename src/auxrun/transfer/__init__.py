"""Zero-shot cross-type transfer (KTN): see its issue."""
