"""Layer 5 of 9, storage: run folders (``runs``): one per configuration, locked while trained, written
atomically, reused when finished; the checkpoint format; the per-step loss log."""
